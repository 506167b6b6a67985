#include "ring.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "ferry/base/check.h"
#include "ferry/base/clock.h"

namespace ferry::bench {

Ring::~Ring() {
    if (open_) {
        io_uring_queue_exit(&ring_);
    }
}

absl::Status Ring::init(unsigned entries) {
    io_uring_params params{};
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    params.cq_entries = entries * 4;
    int rc = io_uring_queue_init_params(entries, &ring_, &params);
    if (rc == -EINVAL) {
        params = {};
        params.flags = IORING_SETUP_CQSIZE;
        params.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, &ring_, &params);
    }
    if (rc < 0) {
        return absl::InternalError(absl::StrFormat("io_uring_queue_init: %s", strerror(-rc)));
    }
    open_ = true;
    return absl::OkStatus();
}

io_uring_sqe* Ring::prep(Op* op) noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
    }
    FERRY_CHECK(sqe != nullptr);
    io_uring_sqe_set_data(sqe, op);
    return sqe;
}

uint64_t Ring::run_once(uint64_t timeout_ns) noexcept {
    __kernel_timespec ts{};
    ts.tv_sec = static_cast<int64_t>(timeout_ns / 1'000'000'000ULL);
    ts.tv_nsec = static_cast<long long>(timeout_ns % 1'000'000'000ULL);
    io_uring_cqe* cqe = nullptr;
    // -ETIME (nothing arrived) and -EINTR are both just an empty batch.
    (void)io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    now_ = base::mono_ns();

    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
        auto* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
        op->complete(cqe->res, cqe->flags);
        ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    return now_;
}

}  // namespace ferry::bench
