// Decides when a worker may start its next connect: at most `rate` per second (0: unpaced) and
// at most kMaxPending at once, so thousands of connects do not overflow the peer's SYN backlog.
#pragma once

#include <cstdint>

namespace ferry::bench {

class ConnectPacer final {
  public:
    static constexpr uint32_t kMaxPending = 512;

    // `rate` is this worker's share of --connect-rate.
    ConnectPacer(double rate, uint64_t start_ns) noexcept : rate_(rate), start_ns_(start_ns) {}

    [[nodiscard]] bool may_start(uint64_t now_ns) const noexcept {
        if (pending_ >= kMaxPending) {
            return false;
        }
        if (rate_ <= 0) {
            return true;
        }
        const double elapsed_s = static_cast<double>(now_ns - start_ns_) / 1e9;
        return static_cast<double>(started_) < 1.0 + elapsed_s * rate_;
    }
    void started() noexcept {
        ++started_;
        ++pending_;
    }
    void finished() noexcept { --pending_; }

  private:
    double rate_;
    uint64_t start_ns_;
    uint64_t started_ = 0;
    uint32_t pending_ = 0;
};

}  // namespace ferry::bench
