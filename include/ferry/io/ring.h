// io::Ring: one shard's io_uring, with the kernel features it found and the dispatch loop step.
//
// Setup tries SINGLE_ISSUER|DEFER_TASKRUN (completions run only when the shard asks, no IPIs),
// then COOP_TASKRUN, then plain; SQPOLL when asked. Used by exactly one thread.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "ferry/io/op.h"

namespace ferry::io {

struct RingOptions {
    uint32_t entries = 4096;
    bool sqpoll = false;
    uint32_t sqpoll_idle_ms = 50;
    int sqpoll_cpu = -1;
};

struct RingFeatures {
    bool defer_taskrun = false;
    bool coop_taskrun = false;
    bool sqpoll = false;
    bool msg_ring = false;
    bool send_zc = false;
    // The kernel can say when a zero-copy send was copied after all (Linux 6.2+).
    bool send_zc_report_usage = false;
    bool recv_multishot = false;
    bool accept_multishot = false;
};

class Ring final {
  public:
    [[nodiscard]] static absl::StatusOr<std::unique_ptr<Ring>> create(const RingOptions& options);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    // A fresh SQE; when the SQ is full it submits first, so it never returns null (a kernel that
    // cannot take submissions at all is fatal).
    [[nodiscard]] io_uring_sqe* sqe() noexcept;
    [[nodiscard]] io_uring_sqe* sqe(Op* op) noexcept {
        io_uring_sqe* s = sqe();
        io_uring_sqe_set_data(s, op);
        return s;
    }
    // Submits pending SQEs and waits until at least `wait_nr` CQEs are ready.
    void submit_and_wait(unsigned wait_nr) noexcept;
    // Dispatches every ready CQE to its Op (user_data 0 is ignored). Returns how many.
    unsigned dispatch() noexcept;

    [[nodiscard]] io_uring* raw() noexcept { return &ring_; }
    [[nodiscard]] int fd() const noexcept { return ring_.ring_fd; }
    [[nodiscard]] const RingFeatures& features() const noexcept { return features_; }

  private:
    Ring() = default;
    io_uring ring_{};
    RingFeatures features_;
};

// `ns` as the kernel's timespec (timeouts on the ring).
[[nodiscard]] inline __kernel_timespec to_kernel_timespec(uint64_t ns) noexcept {
    return {static_cast<int64_t>(ns / 1'000'000'000), static_cast<long long>(ns % 1'000'000'000)};
}

// An async connect of `fd` with a linked timeout of `timeout_ns`: `connect_op` completes with 0,
// a negative errno, or -ECANCELED when the timeout fired; `timeout_op` completes too (two ops).
// `ts` must stay valid until the SQEs are submitted.
inline void prep_connect_with_timeout(Ring& ring, Op* connect_op, Op* timeout_op, int fd,
                                      const sockaddr* addr, socklen_t len, uint64_t timeout_ns,
                                      __kernel_timespec* ts) noexcept {
    io_uring_sqe* sqe = ring.sqe(connect_op);
    io_uring_prep_connect(sqe, fd, addr, len);
    sqe->flags |= IOSQE_IO_LINK;
    *ts = to_kernel_timespec(timeout_ns);
    io_uring_prep_link_timeout(ring.sqe(timeout_op), ts, 0);
}

}  // namespace ferry::io
