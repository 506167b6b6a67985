// Monotonic time in nanoseconds: the one clock the data path uses for RTT, timeouts and ages.
#pragma once

#include <cstdint>
#include <ctime>

namespace ferry::base {

[[nodiscard]] inline uint64_t mono_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace ferry::base
