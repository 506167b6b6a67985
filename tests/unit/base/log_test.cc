#include "ferry/base/log.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ferry::base
