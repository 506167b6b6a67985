#include "ferry/role/ws_leg.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "ferry/base/log.h"
#include "ferry/proto/ws/frame_writer.h"
#include "ferry/proto/ws/handshake.h"

namespace ferry::role {

namespace pt = proto::tunnel;
namespace ws = proto::ws;

namespace {

// Tags of out_ nodes: the opcode of the frame each piece becomes, and FIN.
constexpr uint8_t kTagOpcodeMask = 0x0f;
constexpr uint8_t kTagFin = 0x80;

}  // namespace

WsLeg::WsLeg(loop::Context& ctx, Metrics& metrics, base::ObjectPool<WsLeg>* pool,
             WsLegOwner& owner) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      pool_(pool),
      owner_(owner),
      tcp_(ctx, owner.transport_metrics(), ctx.local_bufs),
      frames_(ws::ParserOptions{ws::Role::Server, owner.max_message_size(), false}) {
    metrics_.connections_active.add(1);
}

namespace {
// A server Ping with no payload (unmasked, FIN, opcode 9).
constexpr std::array<std::byte, 2> kKeepalivePing{std::byte{0x89}, std::byte{0x00}};
}  // namespace

void WsLeg::start(int fd, std::string_view listen_path, uint64_t timeout_ns,
                  const tls::TlsContext* tls) noexcept {
    tcp_.attach(fd);
    listen_path_ = listen_path;
    request_ = std::make_unique<proto::http1::RequestParser>();
    set_deadline(ctx_.now_ns + timeout_ns);
    if (tls != nullptr) {
        // Key rotation is the tunnel's business; a client's TLS keeps its keys for its life.
        tls_ = std::make_unique<transport::TlsTransport>(ctx_, owner_.transport_metrics(), tcp_,
                                                         *tls, transport::TlsOptions{});
        conn_ = tls_.get();
    }
    receiving_ = true;
    conn_->start(this);
}

void WsLeg::reject(int fd) noexcept {
    tcp_.attach(fd);
    conn_->start(this);
    receiving_ = true;
    close();
}

void WsLeg::read_on() noexcept {
    if (!receiving_ && !closing_) {
        receiving_ = true;
        conn_->resume_reading();
    }
}

void WsLeg::read_off() noexcept {
    if (receiving_ && !closing_) {
        receiving_ = false;
        conn_->pause_reading();
    }
}

void WsLeg::send(uint32_t iov_count, uint64_t bytes) noexcept {
    sending_ = true;
    conn_->write(iov_, iov_count, bytes);
}

void WsLeg::set_deadline(uint64_t ns) noexcept {
    deadline_ns_ = ns;
    if (!deadline_watched && !closing_) {
        owner_.watch_deadline(this);
    }
}

void WsLeg::on_deadline() noexcept {
    switch (phase_) {
        case Phase::Handshake:
            owner_.log_refusal("WebSocket client closed",
                               "no complete Upgrade request within the connect timeout");
            close();
            return;
        case Phase::Opening:
            reset_stream(pt::ErrorCode::Timeout);
            refuse(504, "the tunnel did not accept the stream in time");
            return;
        case Phase::Open:
            on_keepalive_due();
            return;
        case Phase::Closing:
        case Phase::Lingering:
            close();
            return;
    }
}

void WsLeg::arm_keepalive() noexcept {
    const uint64_t ping = owner_.ping_interval_ns();
    const uint64_t idle = owner_.idle_timeout_ns();
    if (ping == 0 && idle == 0) {
        owner_.unwatch_deadline(this);
        return;
    }
    uint64_t at = UINT64_MAX;
    if (ping != 0) {
        at = next_ping_ns_;
    }
    if (idle != 0) {
        at = std::min(at, last_read_ns_ + idle);
    }
    set_deadline(at);
}

void WsLeg::on_keepalive_due() noexcept {
    const uint64_t now = ctx_.now_ns;
    const uint64_t idle = owner_.idle_timeout_ns();
    if (idle != 0 && now - last_read_ns_ >= idle) {
        owner_.log_refusal("WebSocket client closed", "nothing received within --ws-idle-timeout");
        reset_stream(pt::ErrorCode::Cancel);
        close_with(ws::CloseCode::GoingAway, "idle timeout");
        return;
    }
    if (const uint64_t ping = owner_.ping_interval_ns(); ping != 0 && now >= next_ping_ns_) {
        // Keepalive: middleboxes see traffic, and a dead peer shows as an idle timeout (its
        // Pong counts as something received).
        ping_owed_ = true;
        next_ping_ns_ = now + ping;
        send_more();
    }
    arm_keepalive();
}

void WsLeg::on_drain() noexcept {
    if (phase_ == Phase::Handshake && !closing_) {
        refuse(503, "this gateway is shutting down");
    }
}

// ---- handshake --------------------------------------------------------------------------------

void WsLeg::on_transport_read(buf::Chunk&& bytes) noexcept {
    metrics_.bytes_from_local.add(bytes.size());
    switch (phase_) {
        case Phase::Handshake:
            read_head(std::move(bytes));
            return;
        case Phase::Opening:
            // A client may not send frames before the 101 (RFC 6455 §4.1); keep what came anyway
            // for after it, bounded to one buffer.
            if (early_bytes_.empty()) {
                early_bytes_ = std::move(bytes);
                read_off();
            } else {
                close();
            }
            return;
        case Phase::Open:
            last_read_ns_ = ctx_.now_ns;
            read_frames(std::move(bytes));
            return;
        case Phase::Closing:
        case Phase::Lingering:
            return;  // the connection is ending: nothing more is read into the stream
    }
}

void WsLeg::read_head(buf::Chunk&& bytes) noexcept {
    const proto::http1::ParseResult r = request_->feed(bytes.span());
    if (r.status == proto::http1::ParseStatus::NeedMore) {
        return;
    }
    if (r.status == proto::http1::ParseStatus::Error) {
        refuse(r.http_status, r.detail);
        return;
    }
    if (r.consumed < bytes.size()) {
        early_bytes_ = bytes.share(static_cast<uint32_t>(r.consumed),
                                   static_cast<uint32_t>(bytes.size() - r.consumed));
    }
    read_off();
    const ws::UpgradeRequest up = ws::validate_upgrade_request(*request_);
    if (!up.ok()) {
        refuse(up.http_status, up.reason);
        return;
    }
    // A listener with a path serves that path only (its query, if any, is not compared).
    const std::string_view served = listen_path_.substr(0, listen_path_.find('?'));
    if (served != "/" && request_->path() != served) {
        refuse(404, "no WebSocket service at this path");
        return;
    }
    if (!owner_.origin_allowed(up.origin)) {
        refuse(403, "Origin not in --ws-allowed-origins");
        return;
    }
    if (owner_.draining()) {
        refuse(503, "this gateway is shutting down");
        return;
    }
    open_stream();
}

void WsLeg::open_stream() noexcept {
    const ws::UpgradeRequest up = ws::validate_upgrade_request(*request_);
    std::string protocols;
    for (std::string_view p : up.offered_subprotocols()) {
        if (!protocols.empty()) {
            protocols += ", ";
        }
        protocols += p;
    }
    pt::MetadataEntry metadata[4];
    size_t n = 0;
    metadata[n++] = {":path", request_->target()};
    if (!protocols.empty()) {
        metadata[n++] = {"sec-websocket-protocol", protocols};
    }
    if (!up.origin.empty()) {
        metadata[n++] = {"origin", up.origin};
    }
    metadata[n++] = {"trail", owner_.node_name()};
    // The routing key picks the terminator and travels in the OPEN; a request without one is
    // keyed by its client's address.
    KeyBuffer key_buffer;
    std::string_view key = request_route_key(owner_.route_key_rule(), *request_, &key_buffer);
    if (key.empty() && client_address_key(tcp_.raw_socket()->fd(), &key_buffer)) {
        key = key_buffer.view();
    }
    stream_ = owner_.opener().open_stream(pt::StreamProtocol::WebSocket, key, {metadata, n}, this);
    if (stream_ == nullptr) {
        metrics_.connections_rejected.add();
        refuse(503,
               "no tunnel connection takes a new stream now (none usable, stream limit reached, "
               "or no free buffer)");
        return;
    }
    metrics_.connections_accepted.add();
    phase_ = Phase::Opening;
}

void WsLeg::on_stream_accepted(const pt::MetadataView& metadata) noexcept {
    if (phase_ != Phase::Opening) {
        return;
    }
    const ws::UpgradeRequest up = ws::validate_upgrade_request(*request_);
    std::string_view chosen;
    for (const pt::MetadataEntry& e : metadata) {
        if (e.first != "sec-websocket-protocol") {
            continue;
        }
        // Only a subprotocol the client offered may be named in the 101 (RFC 6455 §4.2.2).
        for (std::string_view offered : up.offered_subprotocols()) {
            if (offered == e.second) {
                chosen = offered;
            }
        }
    }
    answer_ = std::make_unique_for_overwrite<char[]>(kHeadAnswerSize);
    answer_len_ = ws::write_101_response({answer_.get(), kHeadAnswerSize}, up.key, chosen);
    request_.reset();  // the head is no longer needed: its memory goes back now
    if (answer_len_ == 0) {
        reset_stream(pt::ErrorCode::InternalError);
        refuse(500, "the 101 response does not fit");
        return;
    }
    phase_ = Phase::Open;
    last_read_ns_ = ctx_.now_ns;
    next_ping_ns_ = ctx_.now_ns + owner_.ping_interval_ns();
    arm_keepalive();
    send_more();
    if (!early_bytes_.empty()) {
        buf::Chunk early = std::move(early_bytes_);
        early_bytes_ = {};
        read_frames(std::move(early));
    }
    if (phase_ == Phase::Open && !paused_) {
        read_on();
    }
}

void WsLeg::refuse(int http_status, std::string_view reason) noexcept {
    owner_.log_refusal("WebSocket handshake refused", reason);
    answer_ = std::make_unique_for_overwrite<char[]>(kHeadAnswerSize);
    answer_len_ = ws::write_error_response({answer_.get(), kHeadAnswerSize}, http_status, reason);
    request_.reset();
    phase_ = Phase::Closing;
    read_off();
    set_deadline(ctx_.now_ns + kLingerNs);  // a client that reads nothing cannot hold us
    if (answer_len_ == 0) {
        close();
        return;
    }
    send_more();
}

// ---- client -> tunnel -------------------------------------------------------------------------

void WsLeg::read_frames(buf::Chunk&& bytes) noexcept {
    if (stream_ == nullptr || finished_) {
        return;
    }
    reading_ = &bytes;
    const ws::ParseResult r = frames_.feed(bytes.span(), *this);
    reading_ = nullptr;
    if (r.status == ws::ParseStatus::Error) {
        owner_.log_refusal("WebSocket client failed", r.detail);
        reset_stream(pt::ErrorCode::Cancel);
        close_with(r.code, r.detail);
        return;
    }
    if (r.status == ws::ParseStatus::Closed) {
        read_off();
        return;
    }
    if (stream_ != nullptr && stream_->should_pause() && receiving_) {
        metrics_.flow_paused.add();
        paused_ = true;
        read_off();
    }
}

void WsLeg::on_message_start(ws::Opcode op) noexcept {
    in_kind_ = op == ws::Opcode::Text ? pt::MessageKind::Text : pt::MessageKind::Binary;
}

bool WsLeg::on_data(std::span<const std::byte> bytes, bool fin) noexcept {
    if (stream_ == nullptr) {
        return true;
    }
    if (bytes.empty() && !fin) {
        return true;  // nothing to carry
    }
    buf::Chunk piece;
    if (!bytes.empty()) {
        // The piece lies in the receive buffer being parsed: send a slice of it, no copy.
        const auto offset = static_cast<uint32_t>(bytes.data() - reading_->data());
        piece = reading_->share(offset, static_cast<uint32_t>(bytes.size()));
    }
    stream_->write(std::move(piece), pt::DataFlags::make(false, fin, in_kind_));
    return true;
}

bool WsLeg::on_control(ws::Opcode op, std::span<const std::byte> payload) noexcept {
    if (op == ws::Opcode::Ping) {
        // Only the latest Ping needs its Pong (RFC 6455 §5.5.3).
        if (!payload.empty()) {  // a zero-length span may carry a null pointer
            std::memcpy(ping_.data(), payload.data(), payload.size());
        }
        ping_len_ = static_cast<uint8_t>(payload.size());
        pong_owed_ = true;
        send_more();
        return true;
    }
    if (op != ws::Opcode::Close || stream_ == nullptr) {
        return true;  // an unsolicited Pong needs nothing
    }
    // The client's Close travels as a Close message; the far side's answer comes back the same
    // way and becomes our Close frame.
    buf::Chunk piece;
    if (!payload.empty()) {
        const std::byte* base = reading_->data();
        if (payload.data() >= base && payload.data() + payload.size() <= base + reading_->size()) {
            piece = reading_->share(static_cast<uint32_t>(payload.data() - base),
                                    static_cast<uint32_t>(payload.size()));
        } else {
            // The payload straddled receive buffers and sits in the parser: copy its few bytes.
            piece = ctx_.local_pool.try_alloc();
            if (piece.empty()) {
                reset_stream(pt::ErrorCode::InternalError);
                close_with(ws::CloseCode::InternalError, "out of buffers");
                return false;
            }
            std::memcpy(piece.data(), payload.data(), payload.size());
            piece = piece.share(0, static_cast<uint32_t>(payload.size()));
        }
    }
    stream_->write(std::move(piece), pt::DataFlags::make(false, true, pt::MessageKind::Close));
    stream_->finish();
    finished_ = true;
    // The far side answers within the linger time or the connection ends without it.
    set_deadline(ctx_.now_ns + kLingerNs);
    return false;
}

void WsLeg::on_stream_writable() noexcept {
    if (paused_ && phase_ == Phase::Open && !finished_) {
        paused_ = false;
        read_on();
    }
}

void WsLeg::on_transport_down(const char* reason, int err) noexcept {
    if (tls_ != nullptr && !tls_->established()) {
        owner_.log_refusal("WebSocket client TLS handshake failed", reason);
        close();
        return;
    }
    if (err != 0 || tls_ != nullptr) {
        // An error, or the end of a TLS connection (which closes it): nothing more goes out.
        FERRY_LOG(Debug, "websocket client connection: %s: %s", reason,
                  err != 0 ? strerror(err) : "closed");
        reset_stream(pt::ErrorCode::Cancel);
        close();
        return;
    }
    if (phase_ == Phase::Lingering) {
        close();
        return;
    }
    // A client that drops the TCP connection without the closing handshake cut its stream short.
    if (!finished_) {
        reset_stream(pt::ErrorCode::Cancel);
    }
    if (phase_ == Phase::Closing) {
        return;  // the last answer is still being written; close after it
    }
    release_stream();
    close();
}

// ---- tunnel -> client -------------------------------------------------------------------------

void WsLeg::on_stream_data(buf::Chunk&& data, pt::DataFlags flags) noexcept {
    if (phase_ == Phase::Opening) {
        // A peer that accepts silently (v1) starts with data.
        on_stream_accepted({});
    }
    if (phase_ != Phase::Open || close_owed_) {
        if (stream_ != nullptr) {
            stream_->consumed(data.size());
        }
        return;
    }
    const uint32_t size = data.size();
    if (flags.kind() == pt::MessageKind::Close) {
        // A Close payload is at most 125 bytes; keep it and answer with it once it is whole.
        if (tunnel_close_len_ + size <= close_payload_.size()) {
            if (size > 0) {  // a zero-length span may carry a null pointer
                std::memcpy(close_payload_.data() + tunnel_close_len_, data.data(), size);
            }
            tunnel_close_len_ += size;
        } else {
            tunnel_close_too_big_ = true;
        }
        stream_->consumed(size);
        if (!flags.end_message()) {
            return;
        }
        ws::CloseInfo info{};
        const std::span<const std::byte> payload(close_payload_.data(), tunnel_close_len_);
        if (tunnel_close_too_big_ || ws::parse_close_payload(payload, &info).detail != nullptr) {
            close_with(ws::CloseCode::InternalError, "invalid close from the far side");
        } else {
            close_len_ = static_cast<uint8_t>(tunnel_close_len_);
            close_owed_ = true;
            phase_ = Phase::Closing;
            read_off();
            set_deadline(ctx_.now_ns + kLingerNs);
            send_more();
        }
        return;
    }
    if (size == 0 && !flags.end_message()) {
        return;  // an empty piece inside a message adds no frame
    }
    uint8_t tag = flags.end_message() ? kTagFin : 0;
    if (!out_in_message_) {
        tag |= static_cast<uint8_t>(flags.kind() == pt::MessageKind::Text ? ws::Opcode::Text
                                                                          : ws::Opcode::Binary);
    }  // else Continuation (0)
    out_in_message_ = !flags.end_message();
    out_.push(ctx_.nodes, std::move(data), tag);
    send_more();
}

void WsLeg::on_stream_fin() noexcept {
    fin_from_peer_ = true;
    if (phase_ == Phase::Opening) {
        on_stream_accepted({});
    }
    if (phase_ == Phase::Open) {
        // The far side ended the stream without a Close message: it is going away.
        close_with(ws::CloseCode::GoingAway, "the far side ended the stream");
    }
}

void WsLeg::on_stream_reset(pt::ErrorCode code) noexcept {
    stream_ = nullptr;
    if (phase_ == Phase::Opening) {
        char reason[128];
        std::snprintf(reason, sizeof(reason), "the tunnel stream was reset: %s",
                      pt::error_code_name(code));
        // The far side's upstream did not answer in time: a gateway timeout, not a bad gateway.
        // The tunnel went away or the terminator refused (draining, full): 503, try again.
        refuse(code == pt::ErrorCode::Timeout                                            ? 504
               : code == pt::ErrorCode::Shutdown || code == pt::ErrorCode::RefusedStream ? 503
                                                                                         : 502,
               reason);
        return;
    }
    if (phase_ == Phase::Open) {
        FERRY_LOG(Debug, "websocket stream reset: %s", pt::error_code_name(code));
        if (code == pt::ErrorCode::Shutdown) {
            // The terminator (or the tunnel to it) went away: reconnecting reaches another one.
            close_with(ws::CloseCode::ServiceRestart, "the tunnel to the terminator went away");
        } else if (code == pt::ErrorCode::RefusedStream) {
            close_with(ws::CloseCode::TryAgainLater, "the terminator refused the stream");
        } else {
            close_with(ws::CloseCode::InternalError, "the tunnel stream was reset");
        }
    }
}

void WsLeg::close_with(ws::CloseCode code, std::string_view reason) noexcept {
    if (close_owed_ || close_sent_) {
        return;
    }
    close_len_ = static_cast<uint8_t>(ws::write_close_payload(
        std::span<std::byte, ws::kMaxControlPayload>(close_payload_), code, reason));
    close_owed_ = true;
    phase_ = Phase::Closing;
    read_off();
    set_deadline(ctx_.now_ns + kLingerNs);  // a client that reads nothing cannot hold us
    send_more();
}

void WsLeg::send_more() noexcept {
    if (closing_ || sending_) {
        return;
    }
    uint32_t n = 0;
    uint64_t bytes = 0;
    auto add = [&](void* base, size_t len) {
        iov_[n].iov_base = base;
        iov_[n].iov_len = len;
        bytes += len;
        ++n;
    };
    if (answer_len_ > 0) {
        // The handshake answer goes alone and first.
        add(answer_.get(), answer_len_);
        sending_answer_ = true;
    } else {
        if (pong_owed_) {
            const size_t len =
                ws::write_control_frame(std::span<std::byte, ws::kMaxControlFrameSize>(pong_frame_),
                                        ws::Opcode::Pong, {ping_.data(), ping_len_}, std::nullopt);
            add(pong_frame_.data(), len);
            pong_owed_ = false;
            sending_pong_ = true;
        }
        if (ping_owed_) {
            // An empty Ping: two constant bytes, nothing to keep alive until it is written.
            add(const_cast<std::byte*>(kKeepalivePing.data()), kKeepalivePing.size());
            ping_owed_ = false;
        }
        uint32_t frames = 0;
        uint64_t payload = 0;
        for (buf::ChunkNode* node = out_.head(); node != nullptr && frames < kMaxFrames;
             node = node->next) {
            const auto op = static_cast<ws::Opcode>(node->tag & kTagOpcodeMask);
            const size_t hlen = ws::write_frame_header(
                headers_[frames], op, (node->tag & kTagFin) != 0, node->chunk.size(), std::nullopt);
            add(headers_[frames].data(), hlen);
            if (node->chunk.size() > 0) {
                add(node->chunk.data(), node->chunk.size());
            }
            payload += node->chunk.size();
            ++frames;
        }
        sending_frames_ = frames;
        sending_payload_ = static_cast<uint32_t>(payload);
        // The Close frame ends the connection: it waits for every message frame before it.
        if (close_owed_ && out_.head() == nullptr) {
            const size_t len = ws::write_control_frame(
                std::span<std::byte, ws::kMaxControlFrameSize>(close_frame_), ws::Opcode::Close,
                {close_payload_.data(), close_len_}, std::nullopt);
            add(close_frame_.data(), len);
            close_owed_ = false;
            sending_close_ = true;
        }
    }
    if (n == 0) {
        return;
    }
    send(n, bytes);
}

void WsLeg::on_transport_written() noexcept {
    sending_ = false;
    if (closing_) {
        return;  // the write was cut short by close(); what it held is already released
    }
    bool last_answer = false;
    if (sending_answer_) {
        sending_answer_ = false;
        answer_len_ = 0;
        answer_.reset();
        last_answer = phase_ == Phase::Closing;
    }
    sending_pong_ = false;
    for (uint32_t i = 0; i < sending_frames_; ++i) {
        (void)out_.pop(ctx_.nodes);
    }
    sending_frames_ = 0;
    metrics_.bytes_to_local.add(sending_payload_);
    if (stream_ != nullptr && sending_payload_ > 0) {
        stream_->consumed(sending_payload_);
    }
    sending_payload_ = 0;
    if (sending_close_) {
        sending_close_ = false;
        close_sent_ = true;
        last_answer = true;
    }
    if (last_answer) {
        after_last_answer();
        return;
    }
    send_more();
}

void WsLeg::after_last_answer() noexcept {
    // The client has its answer (an HTTP error or our Close frame): the stream is done with, and
    // the connection ends with our FIN; reading on to the client's EOF keeps the close from
    // becoming a RST that could destroy the answer in flight.
    release_stream();
    out_.clear(ctx_.nodes);
    phase_ = Phase::Lingering;
    conn_->shutdown_write();
    set_deadline(ctx_.now_ns + kLingerNs);
    read_on();
}

// ---- lifetime ---------------------------------------------------------------------------------

void WsLeg::reset_stream(pt::ErrorCode code) noexcept {
    if (stream_ != nullptr) {
        tunnel::Stream* s = stream_;
        stream_ = nullptr;
        s->reset(code);
    }
}

void WsLeg::release_stream() noexcept {
    if (stream_ == nullptr) {
        return;
    }
    tunnel::Stream* s = stream_;
    stream_ = nullptr;
    // Our direction ends here; the session frees the stream once its FIN is out (and cancels
    // what the far side still sends).
    if (!finished_) {
        s->finish();
        finished_ = true;
    }
    s->detach();
}

void WsLeg::close() noexcept {
    if (closing_) {
        return;
    }
    let_go();
    conn_->close();
}

void WsLeg::let_go() noexcept {
    closing_ = true;
    reset_stream(pt::ErrorCode::Cancel);
    owner_.unwatch_deadline(this);
    out_.clear(ctx_.nodes);
    early_bytes_ = {};
}

void WsLeg::on_transport_quiescent() noexcept {
    // The transport may have ended on its own (a send failed after the client's EOF).
    if (!closing_) {
        let_go();
    }
    ctx_.defer_retire(this);
}

void WsLeg::retire() noexcept {
    metrics_.connections_active.add(-1);
    if (slot_ != nullptr) {
        slot_->release();
    }
    pool_->destroy(this);
}

}  // namespace ferry::role
