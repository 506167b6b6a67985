#include "ferry/transport/tcp_transport.h"

#include <cerrno>

namespace ferry::transport {

TcpTransport::TcpTransport(loop::Context& ctx, Metrics& metrics, int fd) noexcept
    : metrics_(metrics), io_(ctx, ctx.tunnel_bufs, this) {
    io_.attach(fd);
}

TcpTransport::TcpTransport(loop::Context& ctx, Metrics& metrics, io::BufRing& bufs) noexcept
    : metrics_(metrics), io_(ctx, bufs, this) {}

void TcpTransport::start(TransportSink* sink) noexcept {
    sink_ = sink;
    io_.start_reading();
}

void TcpTransport::connect(const io::SocketAddress& to, TransportSink* sink) noexcept {
    sink_ = sink;
    connecting_ = true;
    io_.connect(to.get(), to.length);
}

void TcpTransport::on_socket_connected(int res) noexcept {
    connecting_ = false;
    if (res < 0) {
        down(res == -ETIMEDOUT ? "connect timed out" : "connect failed", -res);
        io_.close();
        return;
    }
    io_.start_reading();
    sink_->on_transport_established();
}

void TcpTransport::write(iovec* iov, uint32_t count, uint64_t bytes) noexcept {
    writing_ = true;
    metrics_.tunnel_bytes_out.add(bytes);
    io_.send(iov, count, bytes);
}

void TcpTransport::close() noexcept {
    // The layer above asked: it needs no on_transport_down for its own decision.
    down_ = true;
    io_.close();
}

void TcpTransport::on_socket_data(buf::Chunk&& bytes) noexcept {
    metrics_.tunnel_bytes_in.add(bytes.size());
    sink_->on_transport_read(std::move(bytes));
}

void TcpTransport::on_socket_eof() noexcept { down("peer closed the tunnel connection", 0); }

void TcpTransport::on_socket_error(const char* what, int err) noexcept {
    down(what, err);
    io_.close();
}

bool TcpTransport::on_socket_recv_error(int err) noexcept {
    return sink_->on_transport_recv_error(err);
}

void TcpTransport::on_socket_sent() noexcept {
    writing_ = false;
    sink_->on_transport_written();
}

void TcpTransport::on_socket_recv_stopped() noexcept { sink_->on_transport_read_stopped(); }

void TcpTransport::on_socket_closed() noexcept {
    if (writing_) {
        // The write never finished: tell the layer above so it releases its buffers.
        writing_ = false;
        sink_->on_transport_written();
    }
    sink_->on_transport_quiescent();
}

void TcpTransport::down(const char* reason, int err) noexcept {
    if (!down_) {
        down_ = true;
        sink_->on_transport_down(reason, err);
    }
}

}  // namespace ferry::transport
