#include "ferry/base/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <string_view>

namespace ferry::base {
namespace {

struct LevelCase {
    std::string_view text;
    LogLevel level;
};

TEST(ParseLogLevel, AcceptsEveryLevelName) {
    const LevelCase cases[] = {
        {"debug", LogLevel::Debug}, {"info", LogLevel::Info}, {"warn", LogLevel::Warn},
        {"error", LogLevel::Error}, {"off", LogLevel::Off},
    };
    for (const LevelCase& c : cases) {
        LogLevel out = c.level == LogLevel::Off ? LogLevel::Debug : LogLevel::Off;
        EXPECT_TRUE(parse_log_level(c.text, &out)) << c.text;
        EXPECT_EQ(out, c.level) << c.text;
    }
}

TEST(ParseLogLevel, IgnoresLetterCase) {
    const LevelCase cases[] = {
        {"DEBUG", LogLevel::Debug}, {"Info", LogLevel::Info}, {"wArN", LogLevel::Warn},
        {"ERROR", LogLevel::Error}, {"Off", LogLevel::Off},
    };
    for (const LevelCase& c : cases) {
        LogLevel out = c.level == LogLevel::Off ? LogLevel::Debug : LogLevel::Off;
        EXPECT_TRUE(parse_log_level(c.text, &out)) << c.text;
        EXPECT_EQ(out, c.level) << c.text;
    }
}

TEST(ParseLogLevel, RejectsUnknownNamesAndLeavesTheOutputAlone) {
    const std::string_view bad[] = {
        "",     "verbose", "warning", "inf",   "information", "debug ", " info", "err",   "of",
        "offf", "trace",   "INFO\n",  "d3bug", "fatal",       "0",      "1",     "wa rn", "errors",
    };
    for (std::string_view text : bad) {
        LogLevel out = LogLevel::Warn;
        EXPECT_FALSE(parse_log_level(text, &out)) << "'" << text << "'";
        EXPECT_EQ(out, LogLevel::Warn) << "'" << text << "'";
    }
}

TEST(ParseLogLevel, StopsAtTheViewLengthNotAtATerminator) {
    constexpr std::string_view kText = "infoXYZ";
    LogLevel out = LogLevel::Off;
    EXPECT_TRUE(parse_log_level(kText.substr(0, 4), &out));
    EXPECT_EQ(out, LogLevel::Info);
}

TEST(LogEnabled, FollowsTheProcessThreshold) {
    const int saved = g_log_level.load();
    g_log_level.store(static_cast<int>(LogLevel::Warn));
    EXPECT_FALSE(log_enabled(LogLevel::Debug));
    EXPECT_FALSE(log_enabled(LogLevel::Info));
    EXPECT_TRUE(log_enabled(LogLevel::Warn));
    EXPECT_TRUE(log_enabled(LogLevel::Error));
    g_log_level.store(static_cast<int>(LogLevel::Off));
    EXPECT_FALSE(log_enabled(LogLevel::Error));
    g_log_level.store(saved);
}

// Captures what log_line writes to stderr while `body` runs.
template <typename Body>
std::string capture_stderr(Body body) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    const int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    body();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    std::string out;
    char chunk[4096];
    ssize_t n = 0;
    while ((n = read(fds[0], chunk, sizeof(chunk))) > 0) {
        out.append(chunk, static_cast<size_t>(n));
    }
    close(fds[0]);
    return out;
}

TEST(ParseLogFormat, AcceptsTextAndJsonOnly) {
    LogFormat f = LogFormat::Json;
    EXPECT_TRUE(parse_log_format("text", &f));
    EXPECT_EQ(f, LogFormat::Text);
    EXPECT_TRUE(parse_log_format("json", &f));
    EXPECT_EQ(f, LogFormat::Json);
    EXPECT_FALSE(parse_log_format("JSONL", &f));
    EXPECT_FALSE(parse_log_format("", &f));
    EXPECT_EQ(f, LogFormat::Json);
}

TEST(LogLine, TextNamesLevelAndShard) {
    g_log_format.store(static_cast<int>(LogFormat::Text));
    set_thread_shard(3);
    std::string out = capture_stderr([] { log_line(LogLevel::Warn, "tunnel down"); });
    set_thread_shard(-1);
    EXPECT_NE(out.find(" WARN  [shard3] tunnel down\n"), std::string::npos) << out;
    EXPECT_EQ(out.back(), '\n');
}

TEST(LogLine, JsonIsOneEscapedObjectPerLine) {
    g_log_format.store(static_cast<int>(LogFormat::Json));
    set_thread_shard(1);
    std::string out =
        capture_stderr([] { log_line(LogLevel::Error, "peer \"b\\c\"\nsaid\t\x01 h\xc3\xa9llo"); });
    set_thread_shard(-1);
    std::string main_out = capture_stderr([] { log_line(LogLevel::Info, "started"); });
    g_log_format.store(static_cast<int>(LogFormat::Text));
    ASSERT_EQ(out.rfind("{\"ts\":\"", 0), 0u) << out;
    EXPECT_NE(out.find("\",\"level\":\"ERROR\",\"shard\":1,\"msg\":\"peer \\\"b\\\\c\\\"\\nsaid\\t"
                       "\\u0001 h\xc3\xa9llo\"}\n"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find('\n'), out.size() - 1);  // the newline in the message was escaped
    EXPECT_NE(main_out.find("\"level\":\"INFO\",\"shard\":\"main\",\"msg\":\"started\"}\n"),
              std::string::npos)
        << main_out;
}

TEST(LogLine, JsonCutsALongMessageAndStillCloses) {
    g_log_format.store(static_cast<int>(LogFormat::Json));
    std::string quotes(3000, '"');
    std::string out = capture_stderr([&] { log_line(LogLevel::Info, quotes); });
    g_log_format.store(static_cast<int>(LogFormat::Text));
    ASSERT_GT(out.size(), 3u);
    EXPECT_EQ(out.substr(out.size() - 3), "\"}\n");
    EXPECT_LE(out.size(), 4096u);
}

}  // namespace
}  // namespace ferry::base
