#include "ferry/transport/ws_transport.h"

#include <sys/random.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "ferry/base/check.h"
#include "ferry/base/log.h"
#include "ferry/io/socket_io.h"
#include "ferry/proto/ws/frame_writer.h"
#include "ferry/proto/ws/handshake.h"

namespace ferry::transport {

namespace ws = proto::ws;

namespace {

// Client frames queued at once: bounds what a client holds in copies of the writer's bytes.
constexpr uint32_t kMaxMaskedFrames = 32;

constexpr std::string_view kSubprotocols[] = {kTunnelSubprotocol};

std::span<char> chars(const buf::Chunk& c) noexcept {
    return {reinterpret_cast<char*>(c.data()), c.capacity()};
}

}  // namespace

// ---- MaskKeySource ----------------------------------------------------------------------------

void MaskKeySource::fill(std::span<std::byte> out) noexcept {
    // Requests of up to 256 bytes are never cut short once the pool is initialised
    // (getrandom(2)); a failure here is a broken system, not peer input.
    size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        FERRY_CHECK(n > 0);
        done += static_cast<size_t>(n);
    }
}

ws::MaskKey MaskKeySource::next() noexcept {
    if (used_ + 4 > block_.size()) {
        fill(block_);
        used_ = 0;
    }
    ws::MaskKey key;
    std::memcpy(key.data(), block_.data() + used_, key.size());
    used_ += key.size();
    return key;
}

// ---- WsTransport ------------------------------------------------------------------------------

WsTransport::WsTransport(loop::Context& ctx, Metrics& metrics, std::unique_ptr<Transport> lower,
                         WsOptions options) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      lower_(std::move(lower)),
      options_(std::move(options)),
      // Pieces go up as they arrive (nothing is buffered per message), so the message limit
      // bounds no memory; the peer's frames are at most its max_frame_payload.
      parser_(ws::ParserOptions{options_.is_server ? ws::Role::Server : ws::Role::Client,
                                ws::kDefaultMaxMessageSize, false}) {}

WsTransport::~WsTransport() {
    ctx_.buffer_waits.cancel(this);
    tx_.clear(ctx_.nodes);
}

void WsTransport::start(TransportSink* sink) noexcept {
    sink_ = sink;
    lower_->start(this);
    if (options_.is_server) {
        request_ = std::make_unique<proto::http1::RequestParser>();
    } else {
        send_request();
    }
}

// ---- opening handshake (RFC 6455 §4) ----------------------------------------------------------

void WsTransport::send_request() noexcept {
    std::array<std::byte, 16> nonce;
    MaskKeySource::fill(nonce);
    const std::array<char, ws::kClientKeySize> key = ws::encode_client_key(nonce);
    std::memcpy(client_key_.data(), key.data(), key.size());
    response_ = std::make_unique<ws::ResponseHeadParser>();
    buf::Chunk c = ctx_.alloc_tunnel_chunk();
    if (c.empty()) {
        down("out of buffers for the WebSocket upgrade", 0);
        return;
    }
    const size_t n =
        ws::write_upgrade_request(chars(c), options_.host, options_.path,
                                  std::string_view(client_key_.data(), key.size()), kSubprotocols);
    if (n == 0) {
        down("the WebSocket upgrade request does not fit a buffer", 0);
        return;
    }
    c.set_size(static_cast<uint32_t>(n));
    tx_.push(ctx_.nodes, std::move(c));
    send_next();
}

size_t WsTransport::client_handshake(const buf::Chunk& bytes) noexcept {
    const ws::HeadResult r = response_->feed(bytes.span());
    if (r.status == ws::HeadStatus::NeedMore) {
        return bytes.size();
    }
    if (r.status == ws::HeadStatus::Error) {
        metrics_.ws_upgrade_failures.add();
        down(r.detail, 0);
        return bytes.size();
    }
    const ws::UpgradeResponse up = ws::validate_upgrade_response(
        *response_, std::string_view(client_key_.data(), ws::kClientKeySize), kSubprotocols);
    if (!up.ok() || up.subprotocol != kTunnelSubprotocol) {
        metrics_.ws_upgrade_failures.add();
        FERRY_LOG(Warn, "tunnel WebSocket upgrade to %s refused: HTTP %d (%s)", options_.path,
                  response_->status_code(), up.ok() ? "no ferry-tunnel subprotocol" : up.error);
        down(up.ok() ? "the server did not select the ferry-tunnel subprotocol" : up.error, 0);
        return bytes.size();
    }
    response_.reset();
    upgraded();
    return r.consumed;
}

size_t WsTransport::server_handshake(const buf::Chunk& bytes) noexcept {
    const proto::http1::ParseResult r = request_->feed(bytes.span());
    if (r.status == proto::http1::ParseStatus::NeedMore) {
        return bytes.size();
    }
    if (r.status == proto::http1::ParseStatus::Error) {
        refuse(r.http_status, r.detail);
        return bytes.size();
    }
    // The path first: a client at the wrong address hears "not here", whatever it asked.
    if (request_->path() != options_.path) {
        refuse(404, "no tunnel at this path");
        return bytes.size();
    }
    const ws::UpgradeRequest up = ws::validate_upgrade_request(*request_);
    if (!up.ok()) {
        refuse(up.http_status, up.reason);
        return bytes.size();
    }
    if (ws::select_subprotocol(up, kSubprotocols).empty()) {
        refuse(400, "the ferry-tunnel subprotocol is required");
        return bytes.size();
    }
    buf::Chunk c = ctx_.alloc_tunnel_chunk();
    if (c.empty()) {
        down("out of buffers for the WebSocket upgrade", 0);
        return bytes.size();
    }
    const size_t n = ws::write_101_response(chars(c), up.key, kTunnelSubprotocol);
    FERRY_CHECK(n > 0);
    c.set_size(static_cast<uint32_t>(n));
    tx_.push(ctx_.nodes, std::move(c));
    request_.reset();
    upgraded();
    send_next();
    return r.consumed;
}

void WsTransport::refuse(int http_status, const char* reason) noexcept {
    // Anyone can provoke this: logged at debug level only.
    FERRY_LOG(Debug, "tunnel WebSocket upgrade refused: %d %s", http_status, reason);
    metrics_.ws_upgrade_failures.add();
    phase_ = Phase::Refused;
    request_.reset();
    buf::Chunk c = ctx_.alloc_tunnel_chunk();
    if (!c.empty()) {
        const size_t n = ws::write_error_response(chars(c), http_status, reason);
        c.set_size(static_cast<uint32_t>(n));
        if (n > 0) {
            tx_.push(ctx_.nodes, std::move(c));
        }
    }
    close_when_sent("refused the WebSocket upgrade");
}

void WsTransport::upgraded() noexcept {
    phase_ = Phase::Open;
    metrics_.ws_upgrades.add();
    sink_->on_transport_established();
}

// ---- input ------------------------------------------------------------------------------------

void WsTransport::on_transport_read(buf::Chunk&& bytes) noexcept {
    if (down_ || phase_ == Phase::Refused || close_reason_ != nullptr) {
        return;
    }
    size_t offset = 0;
    if (phase_ == Phase::Handshake) {
        offset = options_.is_server ? server_handshake(bytes) : client_handshake(bytes);
        if (phase_ != Phase::Open || down_) {
            return;
        }
    }
    frames(bytes, offset);
}

void WsTransport::frames(buf::Chunk& bytes, size_t offset) noexcept {
    if (offset >= bytes.size()) {
        return;
    }
    FrameEvents events{this, &bytes};
    const ws::ParseResult r = parser_.feed(bytes.span().subspan(offset), events);
    switch (r.status) {
        case ws::ParseStatus::NeedMore:
        case ws::ParseStatus::Closed:
            return;
        case ws::ParseStatus::Stopped:
            if (text_message_) {
                // RFC 6455 §7.4.1: 1003, data of a type we cannot accept.
                fail(ws::CloseCode::UnsupportedData, "text message on the tunnel");
            }
            return;
        case ws::ParseStatus::Error:
            fail(r.code, r.detail);
            return;
    }
}

void WsTransport::FrameEvents::on_message_start(ws::Opcode op) noexcept {
    if (op == ws::Opcode::Text) {
        t->text_message_ = true;
    }
}

bool WsTransport::FrameEvents::on_data(std::span<const std::byte> bytes, bool) noexcept {
    if (t->down_ || t->text_message_) {
        return false;
    }
    if (!bytes.empty()) {
        // Unmasked in place: the layer above gets a slice of the very receive buffer.
        const auto at = static_cast<uint32_t>(bytes.data() - chunk->data());
        t->sink_->on_transport_read(chunk->share(at, static_cast<uint32_t>(bytes.size())));
    }
    return !t->down_;
}

bool WsTransport::FrameEvents::on_control(ws::Opcode op,
                                          std::span<const std::byte> payload) noexcept {
    switch (op) {
        case ws::Opcode::Ping:
            // RFC 6455 §5.5.3: a Pong with the Ping's payload.
            if (!t->close_queued_) {
                (void)t->queue_control(ws::Opcode::Pong, payload);
                t->send_next();
            }
            return !t->down_;
        case ws::Opcode::Close: {
            // RFC 6455 §5.5.1: answer with a Close (echoing the code), then the connection ends.
            ws::CloseInfo info{};
            (void)ws::parse_close_payload(payload, &info);
            FERRY_LOG(Debug, "tunnel WebSocket: peer sent Close %u",
                      static_cast<unsigned>(info.code));
            if (!t->close_queued_) {
                t->queue_close(info.code, "");
            }
            t->close_when_sent("peer sent a WebSocket Close");
            return false;
        }
        default:
            return true;  // Pong: nothing to do
    }
}

bool WsTransport::queue_control(ws::Opcode op, std::span<const std::byte> payload) noexcept {
    buf::Chunk c = ctx_.alloc_tunnel_chunk();
    if (c.empty()) {
        return false;  // a Pong is not owed if no buffer is free; a Close is then cut short
    }
    std::optional<ws::MaskKey> key;
    if (!options_.is_server) {
        key = keys_.next();
    }
    const size_t n = ws::write_control_frame(
        std::span<std::byte, ws::kMaxControlFrameSize>(c.data(), ws::kMaxControlFrameSize), op,
        payload, key);
    c.set_size(static_cast<uint32_t>(n));
    tx_.push(ctx_.nodes, std::move(c));
    return true;
}

void WsTransport::queue_close(ws::CloseCode code, const char* reason) noexcept {
    // Nothing follows our Close (RFC 6455 §5.5.1): the writer's remaining bytes are dropped.
    close_queued_ = true;
    std::array<std::byte, ws::kMaxControlPayload> body;
    const size_t n = ws::write_close_payload(body, code, reason);
    (void)queue_control(ws::Opcode::Close, std::span<const std::byte>(body.data(), n));
}

void WsTransport::fail(ws::CloseCode code, const char* detail) noexcept {
    FERRY_LOG(Warn, "tunnel WebSocket: %s (closing with %u)", detail, static_cast<unsigned>(code));
    if (!close_queued_) {
        queue_close(code, detail);
    }
    close_when_sent(detail);
}

void WsTransport::close_when_sent(const char* reason) noexcept {
    close_reason_ = reason;
    send_next();
    if (!lower_writing_ && tx_.empty()) {
        down(reason, 0);
    }
}

void WsTransport::on_transport_down(const char* reason, int err) noexcept {
    if (phase_ == Phase::Handshake && err == 0) {
        if (!options_.is_server) {
            metrics_.ws_upgrade_failures.add();
        }
        reason = "peer closed the connection during the WebSocket upgrade";
    }
    down(reason, err);
}

void WsTransport::down(const char* reason, int err) noexcept {
    ctx_.buffer_waits.cancel(this);
    if (!down_) {
        down_ = true;
        sink_->on_transport_down(reason, err);
    }
    lower_->close();
}

// ---- output -----------------------------------------------------------------------------------

void WsTransport::write(iovec* iov, uint32_t count, uint64_t bytes) noexcept {
    writer_iov_ = iov;
    writer_count_ = count;
    writer_index_ = 0;
    writer_offset_ = 0;
    writer_left_ = bytes;
    writer_active_ = true;
    send_next();
}

void WsTransport::send_next() noexcept {
    if (lower_writing_ || down_) {
        return;
    }
    const bool frame_writer =
        writer_active_ && writer_left_ > 0 && phase_ == Phase::Open && !close_queued_;
    if (frame_writer && !options_.is_server) {
        frame_masked();
    }
    uint32_t n = 0;
    uint64_t own = 0;
    for (buf::ChunkNode* node = tx_.head(); node != nullptr && n < kMaxIov; node = node->next) {
        out_[n++] = iovec{node->chunk.data(), node->chunk.size()};
        own += node->chunk.size();
    }
    uint64_t bytes = own;
    if (frame_writer && options_.is_server) {
        bytes += frame_in_place(n);
    }
    if (n == 0) {
        if (frame_writer && writer_left_ > 0) {
            // The client's pools are dry and none of our frames is out to bring one back: wait
            // for other sockets to return buffers rather than drop the connection.
            ctx_.buffer_waits.park(this);
        }
        return;
    }
    sending_own_ = own;
    lower_writing_ = true;
    lower_->write(out_, n, bytes);
}

void WsTransport::frame_masked() noexcept {
    // RFC 6455 §5.3: every client frame is masked with a fresh unpredictable key. The payload
    // belongs to the writer (TLS records, or slices other owners share), so it is not masked in
    // place: it is copied into a pool buffer behind the frame header and masked there.
    while (writer_left_ > 0 && tx_.count() < kMaxMaskedFrames) {
        buf::Chunk c = ctx_.alloc_tunnel_chunk();
        if (c.empty()) {
            return;
        }
        const uint64_t room = c.capacity() - ws::kMaxFrameHeaderSize;
        const uint64_t payload = std::min({writer_left_, room, options_.max_frame_payload});
        const ws::MaskKey key = keys_.next();
        const size_t hlen = ws::write_frame_header(
            std::span<std::byte, ws::kMaxFrameHeaderSize>(c.data(), ws::kMaxFrameHeaderSize),
            ws::Opcode::Binary, true, payload, key);
        std::byte* out = c.data() + hlen;
        uint64_t left = payload;
        while (left > 0) {
            const iovec& v = writer_iov_[writer_index_];
            const size_t take =
                static_cast<size_t>(std::min<uint64_t>(left, v.iov_len - writer_offset_));
            std::memcpy(out, static_cast<const std::byte*>(v.iov_base) + writer_offset_, take);
            out += take;
            left -= take;
            writer_offset_ += take;
            if (writer_offset_ == v.iov_len) {
                ++writer_index_;
                writer_offset_ = 0;
            }
        }
        ws::apply_mask(std::span<std::byte>(c.data() + hlen, payload), key, 0);
        metrics_.bytes_copied.add(payload);
        c.set_size(static_cast<uint32_t>(hlen + payload));
        tx_.push(ctx_.nodes, std::move(c));
        writer_left_ -= payload;
    }
}

uint64_t WsTransport::frame_in_place(uint32_t& n) noexcept {
    // Server frames are not masked (RFC 6455 §5.1): a header of ours, then the writer's own
    // memory, which stays borrowed until the lower write is done.
    uint64_t total = 0;
    for (uint32_t h = 0; h < kMaxHeaders && writer_left_ > 0 && n + 2 <= kMaxIov; ++h) {
        const uint32_t header_slot = n++;
        uint64_t payload = 0;
        while (payload < options_.max_frame_payload && n < kMaxIov &&
               writer_index_ < writer_count_) {
            const iovec& v = writer_iov_[writer_index_];
            const uint64_t take = std::min<uint64_t>(v.iov_len - writer_offset_,
                                                     options_.max_frame_payload - payload);
            if (take > 0) {
                out_[n++] = iovec{static_cast<std::byte*>(v.iov_base) + writer_offset_,
                                  static_cast<size_t>(take)};
                payload += take;
                writer_offset_ += take;
            }
            if (writer_offset_ == v.iov_len) {
                ++writer_index_;
                writer_offset_ = 0;
            }
        }
        const size_t hlen = ws::write_frame_header(
            std::span<std::byte, ws::kMaxFrameHeaderSize>(headers_[h], ws::kMaxFrameHeaderSize),
            ws::Opcode::Binary, true, payload, std::nullopt);
        out_[header_slot] = iovec{headers_[h], hlen};
        total += hlen + payload;
        writer_left_ -= payload;
    }
    return total;
}

void WsTransport::writer_done() noexcept {
    writer_active_ = false;
    writer_iov_ = nullptr;
    writer_left_ = 0;
    sink_->on_transport_written();
}

void WsTransport::on_transport_written() noexcept {
    lower_writing_ = false;
    tx_.consume(ctx_.nodes, sending_own_);
    sending_own_ = 0;
    if (down_) {
        if (writer_active_) {
            writer_done();
        }
        return;
    }
    // The writer's bytes are all framed: the server's went out in this very write, the client's
    // are copies of ours. After our Close the rest is dropped.
    if (writer_active_ && (writer_left_ == 0 || close_queued_)) {
        writer_done();
    }
    send_next();
    if (lower_writing_ || down_) {
        return;
    }
    if (close_reason_ != nullptr) {
        down(close_reason_, 0);
    } else if (shutdown_after_close_) {
        shutdown_after_close_ = false;
        lower_->shutdown_write();
    }
}

void WsTransport::shutdown_write() noexcept {
    if (down_) {
        return;
    }
    if (phase_ != Phase::Open) {
        lower_->shutdown_write();
        return;
    }
    // RFC 6455 §5.5.1: our Close ends our direction; the FIN follows it. Reading goes on until
    // the peer's Close.
    if (!close_queued_) {
        queue_close(ws::CloseCode::NormalClosure, "");
    }
    shutdown_after_close_ = true;
    send_next();
    if (!lower_writing_ && tx_.empty()) {
        shutdown_after_close_ = false;
        lower_->shutdown_write();
    }
}

void WsTransport::close() noexcept {
    if (!down_ && phase_ == Phase::Open && !close_queued_ && !lower_writing_ && tx_.empty()) {
        // Ends the stream the WebSocket way, so the peer can tell a close from a cut connection:
        // one small non-blocking send straight on the socket, as nothing is in flight (a full
        // socket buffer skips it).
        close_queued_ = true;
        if (io::SocketIo* socket = lower_->raw_socket(); socket != nullptr && socket->fd() >= 0) {
            std::array<std::byte, ws::kMaxControlFrameSize> frame;
            std::optional<ws::MaskKey> key;
            if (!options_.is_server) {
                key = keys_.next();
            }
            const size_t n = ws::write_close_frame(frame, ws::CloseCode::NormalClosure, "", key);
            (void)::send(socket->fd(), frame.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }
    down_ = true;
    ctx_.buffer_waits.cancel(this);
    lower_->close();
}

void WsTransport::on_transport_quiescent() noexcept {
    tx_.clear(ctx_.nodes);
    lower_writing_ = false;
    if (writer_active_) {
        writer_done();
    }
    sink_->on_transport_quiescent();
}

}  // namespace ferry::transport
