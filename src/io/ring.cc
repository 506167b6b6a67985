#include "ferry/io/ring.h"

#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_format.h"
#include "ferry/base/check.h"

namespace ferry::io {

absl::StatusOr<std::unique_ptr<Ring>> Ring::create(const RingOptions& options) {
    std::unique_ptr<Ring> ring(new Ring());
    io_uring_params params{};
    int rc = -EINVAL;
    if (options.sqpoll) {
        // SQPOLL trades a busy kernel thread for syscall-free submission; it cannot be combined
        // with DEFER_TASKRUN.
        params.flags = IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER;
        params.sq_thread_idle = options.sqpoll_idle_ms;
        if (options.sqpoll_cpu >= 0) {
            params.flags |= IORING_SETUP_SQ_AFF;
            params.sq_thread_cpu = static_cast<uint32_t>(options.sqpoll_cpu);
        }
        rc = io_uring_queue_init_params(options.entries, &ring->ring_, &params);
        if (rc == 0) {
            ring->features_.sqpoll = true;
        }
    }
    // CLAMP: a deep SQ times four can exceed the kernel's CQ maximum; take the maximum then.
    const uint32_t attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
            IORING_SETUP_CLAMP,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
        IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
    };
    for (uint32_t flags : attempts) {
        if (rc == 0) {
            break;
        }
        params = {};
        params.flags = flags;
        // Multishot recv/accept can post many CQEs per SQE: a deeper CQ avoids overflow.
        params.cq_entries = options.entries * 4;
        rc = io_uring_queue_init_params(options.entries, &ring->ring_, &params);
        if (rc == 0) {
            ring->features_.defer_taskrun = (flags & IORING_SETUP_DEFER_TASKRUN) != 0;
            ring->features_.coop_taskrun = (flags & IORING_SETUP_COOP_TASKRUN) != 0;
        }
    }
    if (rc < 0) {
        return absl::UnavailableError(
            absl::StrFormat("io_uring_queue_init(%u entries): %s", options.entries, strerror(-rc)));
    }
    if (io_uring_probe* probe = io_uring_get_probe_ring(&ring->ring_)) {
        ring->features_.msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) != 0;
        ring->features_.send_zc = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) != 0;
        // IORING_SEND_ZC_REPORT_USAGE came with 6.2, after the opcode itself (6.0): no probe
        // reports it, so the kernel version decides.
        utsname u{};
        unsigned major = 0;
        unsigned minor = 0;
        if (uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2) {
            ring->features_.send_zc_report_usage = major > 6 || (major == 6 && minor >= 2);
        }
        ring->features_.recv_multishot = io_uring_opcode_supported(probe, IORING_OP_RECV) != 0 &&
                                         (params.features & IORING_FEAT_FAST_POLL) != 0;
        ring->features_.accept_multishot = ring->features_.recv_multishot;
        io_uring_free_probe(probe);
    }
    return ring;
}

Ring::~Ring() { io_uring_queue_exit(&ring_); }

io_uring_sqe* Ring::sqe() noexcept {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    while (s == nullptr) {
        int rc = io_uring_submit(&ring_);
        FERRY_CHECK(rc >= 0 || rc == -EBUSY || rc == -EAGAIN);
        s = io_uring_get_sqe(&ring_);
    }
    return s;
}

void Ring::submit_and_wait(unsigned wait_nr) noexcept {
    int rc = io_uring_submit_and_wait(&ring_, wait_nr);
    // EINTR: a signal arrived (shards block signals, but be tolerant); EBUSY/EAGAIN: the CQ is
    // full or the kernel is short of memory, and the next dispatch will make room.
    FERRY_CHECK(rc >= 0 || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN || rc == -ETIME);
}

unsigned Ring::dispatch() noexcept {
    unsigned count = 0;
    io_uring_cqe* cqe = nullptr;
    // Each CQE is consumed before its handler runs, so a handler may submit and even wait
    // without seeing the same CQE twice.
    while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) {
        auto* op = reinterpret_cast<Op*>(io_uring_cqe_get_data(cqe));
        int32_t res = cqe->res;
        uint32_t flags = cqe->flags;
        io_uring_cqe_seen(&ring_, cqe);
        ++count;
        if (op != nullptr) {
            op->complete(res, flags);
        }
    }
    return count;
}

}  // namespace ferry::io
