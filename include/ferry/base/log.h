// Logging facade: one line per event to stderr, prefixed with level, time and shard.
// Formatting allocates, so hot paths log only on errors and state changes, never per message.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"

namespace ferry::base {

enum class LogLevel : int { Debug = 0, Info = 1, Warn = 2, Error = 3, Off = 4 };

// Process-wide threshold: set from --log-level (or --log-level-file) before shards start, and
// again on SIGHUP; relaxed loads, since a late change of level is harmless.
inline std::atomic<int> g_log_level{static_cast<int>(LogLevel::Info)};

[[nodiscard]] inline bool log_enabled(LogLevel level) noexcept {
    return static_cast<int>(level) >= g_log_level.load(std::memory_order_relaxed);
}

// Line layout: text ("<time> <LEVEL> [shard N] message") or JSON, one object per line
// ({"ts":..,"level":..,"shard":N|"main","msg":..}) for log collectors. Set before shards start.
enum class LogFormat : int { Text = 0, Json = 1 };
inline std::atomic<int> g_log_format{static_cast<int>(LogFormat::Text)};

// Parses "text|json"; false when unknown.
[[nodiscard]] bool parse_log_format(std::string_view text, LogFormat* out) noexcept;

// Parses "debug|info|warn|error|off"; false when unknown.
[[nodiscard]] bool parse_log_level(std::string_view text, LogLevel* out) noexcept;
// "DEBUG", "INFO", ...
[[nodiscard]] const char* log_level_name(LogLevel level) noexcept;

// The calling thread's shard index for log prefixes (-1: main thread).
void set_thread_shard(int shard) noexcept;

// Writes one already formatted line with a single write(2), so lines of shards never interleave.
void log_line(LogLevel level, std::string_view message) noexcept;

// Bounds how often one kind of line is written (refusals a peer can provoke at will): at most
// `burst` lines per `period_ns`; the first line after a quiet spell says how many were held back.
// Shard-affine (one per shard and kind); the clock is the caller's.
class LogLimiter final {
  public:
    explicit LogLimiter(uint32_t burst = 10, uint64_t period_ns = 1'000'000'000) noexcept
        : burst_(burst), period_ns_(period_ns) {}
    // True when a line may be written now; `suppressed` is then the count held back since the
    // last written line (to be reported with it).
    [[nodiscard]] bool allow(uint64_t now_ns, uint64_t* suppressed) noexcept {
        if (now_ns - window_start_ns_ >= period_ns_) {
            window_start_ns_ = now_ns;
            written_ = 0;
        }
        if (written_ >= burst_) {
            ++suppressed_;
            return false;
        }
        ++written_;
        *suppressed = suppressed_;
        suppressed_ = 0;
        return true;
    }
    [[nodiscard]] uint64_t suppressed() const noexcept { return suppressed_; }

  private:
    uint32_t burst_;
    uint64_t period_ns_;
    uint64_t window_start_ns_ = 0;
    uint32_t written_ = 0;
    uint64_t suppressed_ = 0;
};

}  // namespace ferry::base

// Logs through `limiter` (a base::LogLimiter) at `now_ns`; a line written after suppressed ones
// ends with their count.
#define FERRY_LOG_LIMITED(limiter, now_ns, level, ...)                               \
    do {                                                                             \
        uint64_t ferry_held_back = 0;                                                \
        if (::ferry::base::log_enabled(::ferry::base::LogLevel::level) &&            \
            (limiter).allow((now_ns), &ferry_held_back)) {                           \
            std::string ferry_line = absl::StrFormat(__VA_ARGS__);                   \
            if (ferry_held_back > 0) {                                               \
                absl::StrAppendFormat(&ferry_line, " (%u similar lines suppressed)", \
                                      ferry_held_back);                              \
            }                                                                        \
            ::ferry::base::log_line(::ferry::base::LogLevel::level, ferry_line);     \
        }                                                                            \
    } while (0)

#define FERRY_LOG(level, ...)                                                                      \
    do {                                                                                           \
        if (::ferry::base::log_enabled(::ferry::base::LogLevel::level)) {                          \
            ::ferry::base::log_line(::ferry::base::LogLevel::level, absl::StrFormat(__VA_ARGS__)); \
        }                                                                                          \
    } while (0)
