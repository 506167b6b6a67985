#include "ferry/base/log.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iterator>

#include "ferry/base/check.h"

namespace ferry::base {
namespace {

thread_local int t_shard = -1;

constexpr const char* kLevelNames[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

}  // namespace

bool parse_log_level(std::string_view text, LogLevel* out) noexcept {
    for (int i = 0; i <= static_cast<int>(LogLevel::Off); ++i) {
        std::string_view name = kLevelNames[i];
        if (text.size() != name.size()) {
            continue;
        }
        bool same = true;
        for (size_t j = 0; j < name.size(); ++j) {
            if ((text[j] | 0x20) != (name[j] | 0x20)) {
                same = false;
                break;
            }
        }
        if (same) {
            *out = static_cast<LogLevel>(i);
            return true;
        }
    }
    return false;
}

const char* log_level_name(LogLevel level) noexcept {
    const auto i = static_cast<size_t>(level);
    return i < std::size(kLevelNames) ? kLevelNames[i] : "?";
}

bool parse_log_format(std::string_view text, LogFormat* out) noexcept {
    if (text == "text") {
        *out = LogFormat::Text;
        return true;
    }
    if (text == "json") {
        *out = LogFormat::Json;
        return true;
    }
    return false;
}

void set_thread_shard(int shard) noexcept { t_shard = shard; }

namespace {

// Appends `message` as the body of a JSON string (RFC 8259 escapes; bytes >= 0x80 pass through,
// so UTF-8 stays UTF-8). Returns the new length, never past `cap` - 8 (room for the closing).
size_t append_json_escaped(char* line, size_t n, size_t cap, std::string_view message) noexcept {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : message) {
        if (n + 8 >= cap) {
            break;
        }
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            line[n++] = '\\';
            line[n++] = c;
        } else if (c == '\n') {
            line[n++] = '\\';
            line[n++] = 'n';
        } else if (c == '\t') {
            line[n++] = '\\';
            line[n++] = 't';
        } else if (u < 0x20 || u == 0x7f) {
            line[n++] = '\\';
            line[n++] = 'u';
            line[n++] = '0';
            line[n++] = '0';
            line[n++] = kHex[u >> 4];
            line[n++] = kHex[u & 0xf];
        } else {
            line[n++] = c;
        }
    }
    return n;
}

}  // namespace

void log_line(LogLevel level, std::string_view message) noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm utc{};
    gmtime_r(&ts.tv_sec, &utc);
    char line[4096];
    const char* level_name = kLevelNames[static_cast<int>(level)];
    if (message.size() > 1900) {
        message = message.substr(0, 1900);
    }
    size_t len = 0;
    if (g_log_format.load(std::memory_order_relaxed) == static_cast<int>(LogFormat::Json)) {
        char shard[16];
        if (t_shard < 0) {
            snprintf(shard, sizeof(shard), "\"main\"");
        } else {
            snprintf(shard, sizeof(shard), "%d", t_shard);
        }
        int n = snprintf(line, sizeof(line),
                         "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                         "\"shard\":%s,\"msg\":\"",
                         utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                         utc.tm_sec, ts.tv_nsec / 1'000'000, level_name, shard);
        if (n <= 0) {
            return;
        }
        len = append_json_escaped(line, static_cast<size_t>(n), sizeof(line), message);
        line[len++] = '"';
        line[len++] = '}';
        line[len++] = '\n';
    } else {
        int n =
            snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s%d] %.*s\n",
                     utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                     utc.tm_sec, ts.tv_nsec / 1'000'000, level_name, t_shard < 0 ? "main" : "shard",
                     t_shard < 0 ? 0 : t_shard, static_cast<int>(message.size()), message.data());
        if (n <= 0) {
            return;
        }
        len = static_cast<size_t>(n) < sizeof(line) ? static_cast<size_t>(n) : sizeof(line) - 1;
    }
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

void check_failed(const char* file, int line, const char* expr) noexcept {
    fprintf(stderr, "FATAL %s:%d: check failed: %s\n", file, line, expr);
    abort();
}

void bug_reported(const char* file, int line, const char* what) noexcept {
    // Once per process is enough to find the site; the counter shows how often.
    static std::atomic<bool> reported{false};
    if (!reported.exchange(true)) {
        fprintf(stderr, "BUG %s:%d: %s\n", file, line, what);
    }
#ifndef NDEBUG
    abort();
#endif
}

}  // namespace ferry::base
