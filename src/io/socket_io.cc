#include "ferry/io/socket_io.h"

#include <unistd.h>

#include <cerrno>

#include "ferry/base/check.h"

namespace ferry::io {

namespace {
// From the 6.2 uapi (liburing 2.3's header predates them).
constexpr uint16_t kSendZcReportUsage = 1U << 3;    // IORING_SEND_ZC_REPORT_USAGE
constexpr uint32_t kNotifUsageZcCopied = 1U << 31;  // IORING_NOTIF_USAGE_ZC_COPIED
}  // namespace

SocketIo::SocketIo(IoContext& ctx, BufRing& bufs, SocketEvents* events) noexcept
    : ctx_(ctx), bufs_(bufs), events_(events) {}

void SocketIo::connect(const sockaddr* addr, socklen_t len) noexcept {
    prep_connect_with_timeout(ctx_.ring, &connect_op_, &aux_op_, fd_, addr, len,
                              ctx_.socket_tuning.connect_timeout_ns, &connect_timeout_);
    ops_ += 2;
}

void SocketIo::on_connect(int32_t res, uint32_t) noexcept {
    finish_op();
    if (closing_) {
        return;
    }
    // A linked timeout that fired shows up here as -ECANCELED: report it as a timeout.
    events_->on_socket_connected(res == -ECANCELED ? -ETIMEDOUT : res);
}

void SocketIo::start_reading() noexcept {
    want_read_ = true;
    if (!recv_armed_ && !closing_ && !failed_ && !waiting_for_buffers()) {
        submit_recv();
    }
}

void SocketIo::submit_recv() noexcept {
    io_uring_sqe* sqe = ctx_.ring.sqe(&recv_op_);
    io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = bufs_.group();
    recv_armed_ = true;
    ++ops_;
}

void SocketIo::pause_reading() noexcept {
    want_read_ = false;
    ctx_.buffer_waits.cancel(this);
    if (recv_armed_ && !closing_) {
        io_uring_prep_cancel(ctx_.ring.sqe(&aux_op_), &recv_op_, 0);
        ++ops_;
    }
}

void SocketIo::retry_after_buffer_wait() noexcept {
    if (!want_read_ || recv_armed_ || closing_ || failed_) {
        return;
    }
    if (bufs_.lent() == 0) {
        // Still dry: stay parked rather than spin on ENOBUFS; buffers come back as sends finish.
        ctx_.buffer_waits.park(this);
        return;
    }
    submit_recv();
}

void SocketIo::on_recv(int32_t res, uint32_t flags) noexcept {
    bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (res > 0) {
        buf::Chunk bytes = bufs_.take(flags, res);
        if (!closing_ && !failed_) {
            events_->on_socket_data(std::move(bytes));
        }
    } else if (res == 0) {
        want_read_ = false;
        if (!closing_ && !failed_) {
            events_->on_socket_eof();
        }
    } else if (res == -ENOBUFS) {
        // The ring ran dry: park until the shard refills it (buffers come back as other
        // sockets' sends complete), then re-arm.
        ctx_.socket_metrics.recv_no_buffers.add();
        if (want_read_ && !closing_ && !failed_) {
            ctx_.buffer_waits.park(this);
        }
    } else if (res != -ECANCELED) {
        if (closing_ || failed_ || !events_->on_socket_recv_error(-res)) {
            fail("recv failed", -res);
        }
    }
    if (!more) {
        recv_armed_ = false;
        // Re-arm when the op ended on its own (or a pause was lifted before its cancellation
        // landed); a parked socket waits for buffers instead.
        if (want_read_ && !closing_ && !failed_ && !waiting_for_buffers()) {
            submit_recv();
        } else if (!want_read_ && !closing_ && !failed_) {
            events_->on_socket_recv_stopped();
        }
        finish_op();
    }
}

void SocketIo::send(iovec* iov, uint32_t count, uint64_t bytes) noexcept {
    FERRY_DCHECK(!send_inflight_ && count > 0);
    iov_ = iov;
    iov_count_ = count;
    send_left_ = bytes;
    submit_send();
}

void SocketIo::submit_send() noexcept {
    msg_ = {};
    msg_.msg_iov = iov_;
    msg_.msg_iovlen = iov_count_;
    io_uring_sqe* sqe = ctx_.ring.sqe(&send_op_);
    // Zero-copy only pays for large writes: below the threshold the page pinning and the extra
    // notification CQE cost more than the copy into the socket buffer.
    if (zerocopy_ && send_left_ >= ctx_.socket_tuning.zerocopy_threshold &&
        ctx_.ring.features().send_zc) {
        io_uring_prep_sendmsg_zc(sqe, fd_, &msg_, MSG_NOSIGNAL);
        if (ctx_.ring.features().send_zc_report_usage) {
            sqe->ioprio |= kSendZcReportUsage;
        }
        ctx_.socket_metrics.send_zc.add();
    } else {
        io_uring_prep_sendmsg(sqe, fd_, &msg_, MSG_NOSIGNAL);
    }
    send_inflight_ = true;
    ++ops_;
}

void SocketIo::on_send(int32_t res, uint32_t flags) noexcept {
    if ((flags & IORING_CQE_F_NOTIF) != 0) {
        // The kernel released the pages of a zero-copy send: only now may the buffers go back.
        --zc_notifs_;
        if ((static_cast<uint32_t>(res) & kNotifUsageZcCopied) != 0 && zerocopy_) {
            // Local delivery (loopback, veth) copies zero-copy pages anyway, so the pinning and
            // the extra CQE were pure cost: this socket sends by copy from now on.
            zerocopy_ = false;
            ctx_.socket_metrics.send_zc_copied.add();
        }
        finish_op();
        if (!send_inflight_ && send_left_ == 0 && zc_notifs_ == 0 && !closing_ && !failed_) {
            events_->on_socket_sent();
        }
        return;
    }
    if ((flags & IORING_CQE_F_MORE) != 0) {
        ++zc_notifs_;
        ++ops_;  // the notification is one more CQE to wait for
    }
    send_inflight_ = false;
    finish_op();
    if (closing_ || failed_) {
        return;
    }
    if (res < 0) {
        fail(res == -EPIPE || res == -ECONNRESET ? "peer reset the connection" : "send failed",
             -res);
        return;
    }
    auto sent = static_cast<uint64_t>(res);
    send_left_ -= sent;
    if (send_left_ > 0) {
        // Short write: advance past what went out and send the rest.
        while (sent > 0 && iov_count_ > 0) {
            if (sent >= iov_->iov_len) {
                sent -= iov_->iov_len;
                ++iov_;
                --iov_count_;
            } else {
                iov_->iov_base = static_cast<char*>(iov_->iov_base) + sent;
                iov_->iov_len -= sent;
                sent = 0;
            }
        }
        submit_send();
        return;
    }
    if (zc_notifs_ == 0) {
        events_->on_socket_sent();
    }
}

void SocketIo::shutdown_write() noexcept {
    if (closing_ || failed_) {
        return;
    }
    io_uring_prep_shutdown(ctx_.ring.sqe(&aux_op_), fd_, SHUT_WR);
    ++ops_;
}

void SocketIo::on_aux(int32_t, uint32_t) noexcept { finish_op(); }

void SocketIo::fail(const char* what, int err) noexcept {
    if (failed_ || closing_) {
        return;
    }
    failed_ = true;
    want_read_ = false;
    events_->on_socket_error(what, err);
}

void SocketIo::close() noexcept {
    if (closing_) {
        return;
    }
    closing_ = true;
    want_read_ = false;
    ctx_.buffer_waits.cancel(this);
    if (fd_ < 0) {
        // Nothing was ever submitted: report through the ring anyway, so the owner never sees
        // its close callback run inside its own call.
        io_uring_prep_nop(ctx_.ring.sqe(&aux_op_));
        ++ops_;
        return;
    }
    io_uring_prep_cancel_fd(ctx_.ring.sqe(&aux_op_), fd_, IORING_ASYNC_CANCEL_ALL);
    ++ops_;
}

void SocketIo::finish_op() noexcept {
    FERRY_DCHECK(ops_ > 0);
    --ops_;
    if (ops_ == 0 && closing_ && !closed_) {
        closed_ = true;
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
        events_->on_socket_closed();
    }
}

}  // namespace ferry::io
