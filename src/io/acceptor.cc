#include "ferry/io/acceptor.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ferry/base/log.h"

namespace ferry::io {

Acceptor::~Acceptor() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

absl::Status Acceptor::listen(const SocketAddress& addr, int backlog) {
    absl::StatusOr<int> fd = listen_tcp(addr, /*reuse_port=*/true, backlog);
    if (!fd.ok()) {
        return fd.status();
    }
    fd_ = *fd;
    return absl::OkStatus();
}

void Acceptor::start() noexcept {
    if (armed_ || stopped_ || fd_ < 0) {
        return;
    }
    io_uring_prep_multishot_accept(ring_.sqe(&accept_op_), fd_, nullptr, nullptr, SOCK_CLOEXEC);
    armed_ = true;
}

void Acceptor::stop() noexcept {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    if (armed_) {
        io_uring_prep_cancel(ring_.sqe(&cancel_op_), &accept_op_, 0);
    }
}

void Acceptor::on_accept(int32_t res, uint32_t flags) noexcept {
    if ((flags & IORING_CQE_F_MORE) == 0) {
        armed_ = false;
    }
    if (res >= 0) {
        if (stopped_) {
            ::close(res);
        } else {
            set_nodelay(res);
            handler_->on_accepted(res);
        }
    } else if (res != -ECANCELED) {
        // EMFILE/ENFILE/ENOMEM: the listener stays; the next accept may succeed once
        // connections close.
        FERRY_LOG(Warn, "accept: %s", strerror(-res));
    }
    if (!armed_) {
        if (stopped_) {
            ::close(fd_);
            fd_ = -1;
        } else {
            start();
        }
    }
}

}  // namespace ferry::io
