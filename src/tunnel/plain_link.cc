#include "ferry/tunnel/plain_link.h"

namespace ferry::tunnel {

PlainLink::PlainLink(Context& ctx, int fd, const char* kind) noexcept
    : ctx_(ctx), io_(ctx, this, &ctx.tunnel_bufs), kind_(kind) {
    io_.attach(fd);
}

void PlainLink::start(LinkSink* sink) noexcept {
    sink_ = sink;
    io_.start_reading();
}

void PlainLink::write(WriteBatch* batch) noexcept {
    batch_ = batch;
    ctx_.metrics.tunnel_bytes_out.add(batch->bytes);
    io_.send(batch->iov, batch->iov_count, batch->bytes);
}

void PlainLink::close() noexcept {
    // The session asked: it needs no on_link_down for its own decision.
    down_ = true;
    io_.close();
}

void PlainLink::on_socket_data(buf::Chunk&& bytes) noexcept {
    ctx_.metrics.tunnel_bytes_in.add(bytes.size());
    sink_->on_link_read(std::move(bytes));
}

void PlainLink::on_socket_eof() noexcept { down("peer closed the tunnel connection", 0); }

void PlainLink::on_socket_error(const char* what, int err) noexcept {
    down(what, err);
    io_.close();
}

void PlainLink::on_socket_sent() noexcept {
    batch_ = nullptr;
    sink_->on_link_written();
}

void PlainLink::on_socket_closed() noexcept {
    if (batch_ != nullptr) {
        // The write never finished: tell the session so it releases the batch's buffers.
        batch_ = nullptr;
        sink_->on_link_written();
    }
    sink_->on_link_quiescent();
}

void PlainLink::down(const char* reason, int err) noexcept {
    if (!down_) {
        down_ = true;
        sink_->on_link_down(reason, err);
    }
}

}  // namespace ferry::tunnel
