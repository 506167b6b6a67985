// Credit accounting for tunnel flow control (RFC 9113 §5.2 and §6.9 semantics): one SendWindow
// and one RecvWindow per stream and per connection. Pure arithmetic; the session sends WINDOW
// frames and turns a false return into RESET or GOAWAY with FlowControlError.
#pragma once

#include <cstdint>

#include "ferry/base/check.h"
#include "ferry/proto/tunnel/frame.h"

namespace ferry::proto::tunnel {

// Bytes this side may still send: starts at the peer's advertised window, shrinks as DATA is
// sent and grows with the peer's WINDOW increments.
class SendWindow final {
  public:
    explicit SendWindow(uint32_t initial) noexcept : available_(initial) {
        FERRY_DCHECK(initial <= kMaxWindowSize);
    }

    [[nodiscard]] uint32_t available() const noexcept { return available_; }

    // The caller sends at most available() bytes.
    void consume(uint32_t n) noexcept {
        FERRY_DCHECK(n <= available_);
        available_ -= n;
    }

    // Applies a peer's WINDOW increment (already checked to be in 1..2^31-1 by the decoder).
    // RFC 9113 §6.9.1: a window above 2^31-1 is a FLOW_CONTROL_ERROR; false leaves it unchanged.
    [[nodiscard]] bool grant(uint32_t increment) noexcept {
        if (increment > kMaxWindowSize - available_) {
            return false;
        }
        available_ += increment;
        return true;
    }

  private:
    uint32_t available_;
};

// Bytes the peer may still send us, plus the consumed bytes not yet credited back. Credit goes
// back in batches of at least half the window: fewer WINDOW frames, and a sender that keeps up
// never sees less than half the window open, so batching cannot stall it.
class RecvWindow final {
  public:
    explicit RecvWindow(uint32_t window) noexcept : window_(window), available_(window) {
        FERRY_DCHECK(window <= kMaxWindowSize);
    }

    [[nodiscard]] uint32_t window() const noexcept { return window_; }
    // Credit the peer still holds.
    [[nodiscard]] uint32_t available() const noexcept { return available_; }
    // Received bytes the application has not consumed yet.
    [[nodiscard]] uint32_t buffered() const noexcept { return window_ - available_ - unacked_; }
    // Consumed bytes not yet sent back as a WINDOW increment.
    [[nodiscard]] uint32_t unacked() const noexcept { return unacked_; }

    // Accounts `n` DATA payload bytes from the peer (per piece or per frame). False when the peer
    // sent more than it was granted: a FlowControlError; the window is left unchanged.
    [[nodiscard]] bool on_received(uint32_t n) noexcept {
        if (n > available_) {
            return false;
        }
        available_ -= n;
        return true;
    }

    // Accounts `n` bytes handed on (e.g. written upstream) and returns the WINDOW increment to
    // send now, or 0 while the unacknowledged amount is below half the window.
    [[nodiscard]] uint32_t on_consumed(uint32_t n) noexcept {
        FERRY_DCHECK(n <= buffered());
        unacked_ += n;
        if (unacked_ == 0 || uint64_t{unacked_} * 2 < window_) {
            return 0;
        }
        const uint32_t increment = unacked_;
        available_ += increment;
        unacked_ = 0;
        return increment;
    }

    // Takes back an increment from on_consumed that could not be sent: it is owed again.
    void unsend(uint32_t increment) noexcept {
        FERRY_DCHECK(increment <= available_);
        available_ -= increment;
        unacked_ += increment;
    }

    // Returns everything consumed so far as one increment, however small (owed credit).
    [[nodiscard]] uint32_t take_unacked() noexcept {
        const uint32_t increment = unacked_;
        available_ += increment;
        unacked_ = 0;
        return increment;
    }

  private:
    uint32_t window_;
    uint32_t available_;
    uint32_t unacked_ = 0;
};

}  // namespace ferry::proto::tunnel
