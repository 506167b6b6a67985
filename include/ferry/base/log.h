// Logging facade: one line per event to stderr, prefixed with level, time and shard.
// Formatting allocates, so hot paths log only on errors and state changes, never per message.
#pragma once

#include <atomic>
#include <string_view>

#include "absl/strings/str_format.h"

namespace ferry::base {

enum class LogLevel : int { Debug = 0, Info = 1, Warn = 2, Error = 3, Off = 4 };

// Process-wide threshold, set once from --log-level before shards start.
inline std::atomic<int> g_log_level{static_cast<int>(LogLevel::Info)};

[[nodiscard]] inline bool log_enabled(LogLevel level) noexcept {
    return static_cast<int>(level) >= g_log_level.load(std::memory_order_relaxed);
}

// Parses "debug|info|warn|error|off"; false when unknown.
[[nodiscard]] bool parse_log_level(std::string_view text, LogLevel* out) noexcept;

// The calling thread's shard index for log prefixes (-1: main thread).
void set_thread_shard(int shard) noexcept;

// Writes one already formatted line with a single write(2), so lines of shards never interleave.
void log_line(LogLevel level, std::string_view message) noexcept;

}  // namespace ferry::base

#define FERRY_LOG(level, ...)                                                                      \
    do {                                                                                           \
        if (::ferry::base::log_enabled(::ferry::base::LogLevel::level)) {                          \
            ::ferry::base::log_line(::ferry::base::LogLevel::level, absl::StrFormat(__VA_ARGS__)); \
        }                                                                                          \
    } while (0)
