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

void set_thread_shard(int shard) noexcept { t_shard = shard; }

void log_line(LogLevel level, std::string_view message) noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm utc{};
    gmtime_r(&ts.tv_sec, &utc);
    char line[2048];
    int n =
        snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s%d] %.*s\n",
                 utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                 utc.tm_sec, ts.tv_nsec / 1'000'000, kLevelNames[static_cast<int>(level)],
                 t_shard < 0 ? "main" : "shard", t_shard < 0 ? 0 : t_shard,
                 static_cast<int>(message.size() > 1900 ? 1900 : message.size()), message.data());
    if (n > 0) {
        size_t len =
            static_cast<size_t>(n) < sizeof(line) ? static_cast<size_t>(n) : sizeof(line) - 1;
        ssize_t ignored = write(STDERR_FILENO, line, len);
        (void)ignored;
    }
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
