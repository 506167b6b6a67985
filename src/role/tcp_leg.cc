#include "ferry/role/tcp_leg.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ferry/base/log.h"

namespace ferry::role {

namespace pt = proto::tunnel;

TcpLeg::TcpLeg(loop::Context& ctx, Metrics& metrics, base::ObjectPool<TcpLeg>* pool) noexcept
    : ctx_(ctx), metrics_(metrics), pool_(pool), io_(ctx, ctx.local_bufs, this) {
    metrics_.connections_active.add(1);
}

void TcpLeg::start_accepted(int fd, tunnel::Stream* stream) noexcept {
    io_.attach(fd);
    stream_ = stream;
    connected_ = true;
    accepted_ = true;
    io_.start_reading();
}

bool TcpLeg::start_connect(const io::SocketAddress& upstream, tunnel::Stream* stream) noexcept {
    int fd = io::new_tcp_socket(upstream.family());
    if (fd < 0) {
        metrics_.upstream_connect_errors.add();
        FERRY_LOG(Warn, "upstream socket: %s", strerror(errno));
        close();
        return false;
    }
    stream_ = stream;
    io_.attach(fd);
    io_.connect(upstream.get(), upstream.length);
    return true;
}

void TcpLeg::connect_over() noexcept {
    if (watcher_ != nullptr) {
        ConnectWatcher* w = watcher_;
        watcher_ = nullptr;
        w->on_connect_over(tunnel_);
    }
}

void TcpLeg::reject(int fd) noexcept {
    io_.attach(fd);
    close();
}

void TcpLeg::on_socket_connected(int res) noexcept {
    connect_over();
    if (res < 0) {
        metrics_.upstream_connect_errors.add();
        FERRY_LOG(Warn, "upstream connect failed: %s; resetting stream", strerror(-res));
        if (stream_ != nullptr) {
            tunnel::Stream* s = stream_;
            stream_ = nullptr;
            s->reset(pt::ErrorCode::ConnectRefused);
        }
        close();
        return;
    }
    if (stream_ != nullptr && !stream_->accept()) {
        tunnel::Stream* s = stream_;
        stream_ = nullptr;
        s->reset(pt::ErrorCode::InternalError);
        close();
        return;
    }
    connected_ = true;
    io_.start_reading();
    send_more();
}

// ---- socket -> tunnel -------------------------------------------------------------------------

void TcpLeg::on_socket_data(buf::Chunk&& bytes) noexcept {
    metrics_.bytes_from_local.add(bytes.size());
    if (stream_ == nullptr) {
        return;
    }
    stream_->write(std::move(bytes));
    if (stream_->should_pause() && io_.reading()) {
        metrics_.flow_paused.add();
        io_.pause_reading();
    }
}

void TcpLeg::on_stream_writable() noexcept {
    if (!eof_read_ && !closing_) {
        io_.start_reading();
    }
}

void TcpLeg::on_socket_eof() noexcept {
    eof_read_ = true;
    if (stream_ != nullptr) {
        stream_->finish();
    }
    maybe_done();
}

void TcpLeg::on_socket_error(const char* what, int err) noexcept {
    FERRY_LOG(Debug, "local socket: %s: %s", what, strerror(err));
    if (stream_ != nullptr) {
        // The far end must not take what came so far for the whole stream: a RESET, which its
        // leg turns into a RST.
        tunnel::Stream* s = stream_;
        stream_ = nullptr;
        s->reset(accepted_ ? pt::ErrorCode::Cancel : pt::ErrorCode::UpstreamReset);
    }
    abort();
}

// ---- tunnel -> socket -------------------------------------------------------------------------

void TcpLeg::on_stream_data(buf::Chunk&& data, pt::DataFlags) noexcept {
    out_.push(ctx_.nodes, std::move(data));
    send_more();
}

void TcpLeg::on_stream_fin() noexcept {
    fin_from_peer_ = true;
    send_more();
}

void TcpLeg::on_stream_reset(pt::ErrorCode code) noexcept {
    FERRY_LOG(Debug, "stream reset: %s", pt::error_code_name(code));
    stream_ = nullptr;
    if (fin_from_peer_ && eof_read_) {
        // Both directions were complete (the tunnel went away after the FINs): deliver what the
        // peer sent, then close cleanly, instead of dropping bytes the client is owed.
        deliver_then_close_ = true;
        io_.pause_reading();
        send_more();
        return;
    }
    // Cut short: a RST, so the local end sees an abort, not a clean end of stream.
    abort();
}

void TcpLeg::send_more() noexcept {
    if (!connected_ || closing_ || io_.sending()) {
        return;
    }
    if (out_.empty()) {
        if (fin_from_peer_ && !shut_wr_) {
            shut_wr_ = true;
            io_.shutdown_write();
        }
        maybe_done();
        return;
    }
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (buf::ChunkNode* node = out_.head(); node != nullptr && n < kMaxIov; node = node->next) {
        iov_[n].iov_base = node->chunk.data();
        iov_[n].iov_len = node->chunk.size();
        bytes += node->chunk.size();
        ++n;
    }
    sending_bytes_ = static_cast<uint32_t>(bytes);
    io_.send(iov_, n, bytes);
}

void TcpLeg::on_socket_sent() noexcept {
    uint32_t sent = sending_bytes_;
    sending_bytes_ = 0;
    out_.consume(ctx_.nodes, sent);
    metrics_.bytes_to_local.add(sent);
    if (stream_ != nullptr) {
        stream_->consumed(sent);
    }
    send_more();
}

// ---- lifetime ---------------------------------------------------------------------------------

void TcpLeg::maybe_done() noexcept {
    // Both directions finished: the client/upstream sent EOF and everything the peer sent
    // (up to its FIN) was written and the write side shut down.
    bool delivered = fin_from_peer_ && shut_wr_ && out_.empty() && !io_.sending();
    if (delivered && deliver_then_close_) {
        close();
        return;
    }
    if (eof_read_ && delivered) {
        if (stream_ != nullptr) {
            tunnel::Stream* s = stream_;
            stream_ = nullptr;
            s->detach();
        }
        close();
    }
}

void TcpLeg::close() noexcept {
    if (closing_) {
        return;
    }
    closing_ = true;
    connect_over();
    out_.clear(ctx_.nodes);
    io_.close();
}

void TcpLeg::abort() noexcept {
    if (!closing_ && io_.fd() >= 0) {
        // SO_LINGER 0: the close that follows sends RST and drops unsent data.
        const linger hard{1, 0};
        (void)setsockopt(io_.fd(), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    }
    close();
}

void TcpLeg::on_socket_closed() noexcept { ctx_.defer_retire(this); }

void TcpLeg::retire() noexcept {
    metrics_.connections_active.add(-1);
    if (slot_ != nullptr) {
        slot_->release();
    }
    pool_->destroy(this);
}

}  // namespace ferry::role
