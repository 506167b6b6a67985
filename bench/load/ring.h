// The ferry-load event loop: one io_uring per worker thread, every SQE's user_data is an Op*.
// Cycle (liburing examples/proxy.c): queue SQEs while dispatching, submit and wait once per
// batch, stamp the batch time, dispatch every ready CQE, advance the CQ once.
#pragma once

#include <liburing.h>

#include <cstdint>

#include "absl/status/status.h"

namespace ferry::bench {

// A completion target. The owner (a connection) keeps it alive until its CQE has been
// dispatched; complete() runs on the ring's thread, from Ring::run_once() only.
class Op {
  public:
    virtual void complete(int res, uint32_t flags) noexcept = 0;

  protected:
    Op() = default;
    ~Op() = default;
};

// Binds an Op to a member function of its owner, so each connection has one typed Op per
// kind of operation (recv, send, connect...) and no lookup happens per completion.
template <typename Owner, void (Owner::*Fn)(int, uint32_t) noexcept>
class MemberOp final : public Op {
  public:
    explicit MemberOp(Owner* owner) noexcept : owner_(owner) {}
    void complete(int res, uint32_t flags) noexcept override { (owner_->*Fn)(res, flags); }

  private:
    Owner* owner_;
};

class Ring final {
  public:
    Ring() = default;
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    // Creates the ring with `entries` SQEs and 4x as many CQEs. Asks for single-issuer and
    // deferred task running (kernel >= 6.1: completions run only when this thread waits) and
    // falls back to a plain ring when the kernel refuses. Call it on the thread that will use
    // the ring: a single-issuer ring belongs to the thread that created it.
    [[nodiscard]] absl::Status init(unsigned entries);

    // An SQE with user_data = op. When the SQ is full the queued SQEs are submitted first, so
    // this never fails; the caller must prep the SQE before calling prep() again.
    [[nodiscard]] io_uring_sqe* prep(Op* op) noexcept;

    // One cycle: submit queued SQEs, wait up to timeout_ns for at least one completion, then
    // dispatch every ready CQE. Returns the monotonic time taken right after the wait, which
    // callers use as the arrival time of the whole batch.
    uint64_t run_once(uint64_t timeout_ns) noexcept;

    // Time stamp of the batch being dispatched (see run_once()).
    [[nodiscard]] uint64_t now() const noexcept { return now_; }

  private:
    io_uring ring_{};
    bool open_ = false;
    uint64_t now_ = 0;
};

}  // namespace ferry::bench
