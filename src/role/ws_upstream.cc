#include "ferry/role/ws_upstream.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ferry/base/check.h"
#include "ferry/proto/ws/frame_writer.h"
#include "ferry/proto/ws/handshake.h"

namespace ferry::role {

namespace pt = proto::tunnel;
namespace ws = proto::ws;

namespace {

// Fills `out` from the kernel CSPRNG. Requests of up to 256 bytes are never cut short once the
// pool is initialised (getrandom(2)); a failure here is a broken system, not peer input.
void fill_random(std::span<std::byte> out) noexcept {
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

// Copies `in` to `out` masked with `key` (RFC 6455 §5.3), in one pass, 8 bytes at a time.
void mask_copy(std::byte* out, std::span<const std::byte> in, const ws::MaskKey& key) noexcept {
    uint64_t wide = 0;
    for (size_t i = 0; i < 8; ++i) {
        std::memcpy(reinterpret_cast<std::byte*>(&wide) + i, &key[i & 3], 1);
    }
    size_t i = 0;
    for (; i + 8 <= in.size(); i += 8) {
        uint64_t word = 0;
        std::memcpy(&word, in.data() + i, 8);
        word ^= wide;
        std::memcpy(out + i, &word, 8);
    }
    for (; i < in.size(); ++i) {
        out[i] = in[i] ^ key[i & 3];
    }
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

// The comma-separated tokens of `list` (at most kMaxSubprotocols), views into it.
size_t split_protocols(std::string_view list,
                       std::array<std::string_view, ws::kMaxSubprotocols>& out) noexcept {
    size_t n = 0;
    while (!list.empty() && n < out.size()) {
        const size_t comma = list.find(',');
        const std::string_view token = trim(list.substr(0, comma));
        if (!token.empty()) {
            out[n++] = token;
        }
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    }
    return n;
}

// The request target for the upstream: the client's as is under an upstream URL of "/", else
// the upstream's path with the client's query appended.
std::string join_target(std::string_view upstream, std::string_view client) {
    if (client.empty() || client.front() != '/') {
        client = "/";
    }
    if (upstream.empty() || upstream == "/") {
        return std::string(client);
    }
    std::string target(upstream);
    const size_t q = client.find('?');
    if (q != std::string_view::npos && q + 1 < client.size()) {
        target += target.find('?') == std::string::npos ? '?' : '&';
        target += client.substr(q + 1);
    }
    return target;
}

}  // namespace

// ---- MaskKeys ---------------------------------------------------------------------------------

ws::MaskKey MaskKeys::next() noexcept {
    if (used_ + 4 > block_.size()) {
        refill();
    }
    ws::MaskKey key;
    std::memcpy(key.data(), block_.data() + used_, key.size());
    used_ += key.size();
    return key;
}

void MaskKeys::refill() noexcept {
    fill_random(block_);
    used_ = 0;
}

// ---- WsUpstreamLeg: handshake -----------------------------------------------------------------

WsUpstreamLeg::WsUpstreamLeg(loop::Context& ctx, Metrics& metrics, WsUpstreams& owner) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      owner_(owner),
      io_(ctx, ctx.local_bufs, this),
      frames_(ws::ParserOptions{ws::Role::Client, owner.options_.max_message_size, false}) {
    metrics_.connections_active.add(1);
}

bool WsUpstreamLeg::start(const ServiceUrl& upstream, tunnel::Stream* stream,
                          const pt::Open& open) noexcept {
    std::string_view client_target;
    std::string_view origin;
    std::string trail;
    for (const pt::MetadataEntry& e : open.metadata) {
        if (e.first == ":path") {
            client_target = e.second;
        } else if (e.first == "sec-websocket-protocol") {
            if (!protocols_.empty()) {
                protocols_ += ", ";
            }
            protocols_ += e.second;
        } else if (e.first == "origin") {
            origin = e.second;
        } else if (e.first == "trail") {
            trail += e.second;
            trail += ", ";
        }
    }
    trail += owner_.options_.node_name;

    std::array<std::byte, 16> nonce;
    fill_random(nonce);
    key_ = ws::encode_client_key(nonce);

    std::string host = upstream.host;
    if (upstream.port != 80) {
        host += ':';
        host += std::to_string(upstream.port);
    }
    const std::string target = join_target(upstream.path, client_target);
    std::array<std::string_view, ws::kMaxSubprotocols> offered{};
    const size_t offered_count = split_protocols(protocols_, offered);
    proto::http1::HeaderField extra[2];
    size_t extra_count = 0;
    if (!origin.empty()) {
        extra[extra_count++] = {"Origin", origin};
    }
    extra[extra_count++] = {"X-Ferry-Trail", trail};

    request_.resize(1024 + target.size() + protocols_.size() + origin.size() + trail.size() +
                    host.size());
    const size_t len = ws::write_upgrade_request(
        {request_.data(), request_.size()}, host, target, {key_.data(), key_.size()},
        {offered.data(), offered_count}, {extra, extra_count});
    if (len == 0) {
        owner_.log_refusal("websocket upstream", "the Upgrade request cannot be written");
        close();
        return false;
    }
    request_.resize(len);

    const int fd = io::new_tcp_socket(upstream.address.family());
    if (fd < 0) {
        metrics_.upstream_connect_errors.add();
        FERRY_LOG(Warn, "websocket upstream socket: %s", strerror(errno));
        close();
        return false;
    }
    stream_ = stream;
    io_.attach(fd);
    io_.connect(upstream.address.get(), upstream.address.length);
    set_deadline(ctx_.now_ns + owner_.options_.handshake_ns);
    return true;
}

void WsUpstreamLeg::set_deadline(uint64_t ns) noexcept {
    deadline_ns_ = ns;
    if (!deadline_watched && !closing_) {
        owner_.watch_deadline(this);
    }
}

void WsUpstreamLeg::on_deadline() noexcept {
    owner_.unwatch_deadline(this);
    if (closing_) {
        return;
    }
    if (phase_ == Phase::Connecting || phase_ == Phase::Handshake) {
        metrics_.upstream_connect_errors.add();
        owner_.log_refusal("websocket upstream timed out",
                           phase_ == Phase::Connecting
                               ? "the connect did not finish within --connect-timeout"
                               : "no answer to the Upgrade request within --connect-timeout");
        fail(pt::ErrorCode::Timeout);
        return;
    }
    // Our Close went unanswered (or the upstream stopped reading): the closing handshake is over
    // from our side. The stream ends cleanly when the Close message already crossed it; the
    // connection goes.
    FERRY_LOG(Debug, "websocket upstream did not finish the closing handshake in time");
    if (close_received_) {
        release_stream();
    } else {
        fail(pt::ErrorCode::Timeout);
        return;
    }
    close();
}

void WsUpstreamLeg::connect_over() noexcept {
    if (watcher_ != nullptr) {
        ConnectWatcher* w = watcher_;
        watcher_ = nullptr;
        w->on_connect_over(tunnel_);
    }
}

void WsUpstreamLeg::on_socket_connected(int res) noexcept {
    connect_over();
    if (res < 0) {
        metrics_.upstream_connect_errors.add();
        FERRY_LOG_LIMITED(owner_.log_, ctx_.now_ns, Warn,
                          "websocket upstream %s: connect failed: %s; resetting stream",
                          owner_.upstream_.text, strerror(-res));
        fail(pt::ErrorCode::ConnectRefused);
        return;
    }
    if (stream_ == nullptr) {
        close();
        return;
    }
    phase_ = Phase::Handshake;
    response_ = std::make_unique<ws::ResponseHeadParser>();
    iov_[0].iov_base = request_.data();
    iov_[0].iov_len = request_.size();
    io_.send(iov_, 1, request_.size());
    io_.start_reading();
}

void WsUpstreamLeg::on_socket_data(buf::Chunk&& bytes) noexcept {
    metrics_.bytes_from_local.add(bytes.size());
    if (closing_) {
        return;
    }
    if (phase_ == Phase::Handshake) {
        read_head(std::move(bytes));
        return;
    }
    read_frames(std::move(bytes));
}

void WsUpstreamLeg::read_head(buf::Chunk&& bytes) noexcept {
    const ws::HeadResult r = response_->feed(bytes.span());
    if (r.status == ws::HeadStatus::NeedMore) {
        return;
    }
    if (r.status == ws::HeadStatus::Error) {
        owner_.log_refusal("websocket upstream answered no valid HTTP head", r.detail);
        fail(pt::ErrorCode::RefusedStream);
        return;
    }
    std::array<std::string_view, ws::kMaxSubprotocols> offered{};
    const size_t offered_count = split_protocols(protocols_, offered);
    const ws::UpgradeResponse up = ws::validate_upgrade_response(
        *response_, {key_.data(), key_.size()}, {offered.data(), offered_count});
    if (!up.ok()) {
        char detail[256];
        std::snprintf(detail, sizeof(detail), "'HTTP/1.%d %d %.*s': %s", response_->version_minor(),
                      response_->status_code(),
                      static_cast<int>(std::min<size_t>(response_->reason_phrase().size(), 100)),
                      response_->reason_phrase().data(), up.error);
        owner_.log_refusal("websocket upstream refused the handshake", detail);
        fail(pt::ErrorCode::RefusedStream);
        return;
    }
    bool accepted = false;
    if (up.subprotocol.empty()) {
        accepted = stream_->accept();
    } else {
        const pt::MetadataEntry ack[] = {{"sec-websocket-protocol", up.subprotocol}};
        accepted = stream_->accept(ack);
    }
    abandon();  // the handshake state is no longer needed: its memory goes back now
    if (!accepted) {
        fail(pt::ErrorCode::InternalError);
        return;
    }
    phase_ = Phase::Open;
    owner_.unwatch_deadline(this);  // an open WebSocket has no deadline (keepalive is the ends')
    send_more();                    // what the tunnel sent before the 101
    if (r.consumed < bytes.size()) {
        read_frames(bytes.share(static_cast<uint32_t>(r.consumed),
                                static_cast<uint32_t>(bytes.size() - r.consumed)));
    }
}

// ---- upstream -> tunnel -----------------------------------------------------------------------

void WsUpstreamLeg::read_frames(buf::Chunk&& bytes) noexcept {
    if (stream_ == nullptr || finished_) {
        return;
    }
    reading_ = &bytes;
    const ws::ParseResult r = frames_.feed(bytes.span(), *this);
    reading_ = nullptr;
    if (r.status == ws::ParseStatus::Error) {
        owner_.log_refusal("websocket upstream failed", r.detail);
        fail(pt::ErrorCode::UpstreamReset);
        return;
    }
    if (r.status == ws::ParseStatus::Closed) {
        return;
    }
    if (stream_ != nullptr && stream_->should_pause() && io_.reading()) {
        metrics_.flow_paused.add();
        paused_ = true;
        io_.pause_reading();
    }
}

void WsUpstreamLeg::on_message_start(ws::Opcode op) noexcept {
    in_kind_ = op == ws::Opcode::Text ? pt::MessageKind::Text : pt::MessageKind::Binary;
}

bool WsUpstreamLeg::on_data(std::span<const std::byte> bytes, bool fin) noexcept {
    if (stream_ == nullptr) {
        return true;
    }
    if (bytes.empty() && !fin) {
        return true;
    }
    buf::Chunk piece;
    if (!bytes.empty()) {
        // Server frames are not masked: the piece is a slice of the receive buffer, no copy.
        const auto offset = static_cast<uint32_t>(bytes.data() - reading_->data());
        piece = reading_->share(offset, static_cast<uint32_t>(bytes.size()));
    }
    stream_->write(std::move(piece), pt::DataFlags::make(false, fin, in_kind_));
    return true;
}

bool WsUpstreamLeg::on_control(ws::Opcode op, std::span<const std::byte> payload) noexcept {
    if (op == ws::Opcode::Ping) {
        if (!close_queued_) {
            (void)queue_control(ws::Opcode::Pong, payload);
            send_more();
        }
        return true;
    }
    if (op != ws::Opcode::Close || stream_ == nullptr) {
        return true;
    }
    close_received_ = true;
    // The upstream's Close travels as a Close message and ends our direction of the stream.
    buf::Chunk piece;
    if (!payload.empty()) {
        piece = ctx_.local_pool.try_alloc();
        if (piece.empty()) {
            fail(pt::ErrorCode::InternalError);
            return false;
        }
        std::memcpy(piece.data(), payload.data(), payload.size());
        piece = piece.share(0, static_cast<uint32_t>(payload.size()));
    }
    stream_->write(std::move(piece), pt::DataFlags::make(false, true, pt::MessageKind::Close));
    stream_->finish();
    finished_ = true;
    if (!close_queued_) {
        // The upstream started the closing handshake: answer with its own code (RFC 6455 §5.5.1).
        queue_close(payload);
        send_more();
    }
    maybe_done();
    return false;
}

void WsUpstreamLeg::on_stream_writable() noexcept {
    if (paused_ && !closing_ && !finished_) {
        paused_ = false;
        io_.start_reading();
    }
}

void WsUpstreamLeg::on_socket_eof() noexcept {
    if (close_received_) {
        maybe_done();
        close();
        return;
    }
    // The upstream dropped the connection without a closing handshake: the stream was cut short.
    if (phase_ == Phase::Handshake) {
        owner_.log_refusal("websocket upstream refused the handshake",
                           "the connection closed before a response head");
    } else {
        FERRY_LOG(Debug, "websocket upstream closed the connection without a Close");
    }
    fail(phase_ == Phase::Handshake ? pt::ErrorCode::RefusedStream : pt::ErrorCode::UpstreamReset);
}

void WsUpstreamLeg::on_socket_error(const char* what, int err) noexcept {
    FERRY_LOG(Debug, "websocket upstream socket: %s: %s", what, strerror(err));
    fail(pt::ErrorCode::UpstreamReset);
}

// ---- tunnel -> upstream -----------------------------------------------------------------------

void WsUpstreamLeg::on_stream_data(buf::Chunk&& data, pt::DataFlags flags) noexcept {
    if (stream_ == nullptr) {
        return;
    }
    const uint32_t size = data.size();
    if (close_queued_ || closing_) {
        stream_->consumed(size);  // after our Close nothing more goes to the upstream
        return;
    }
    if (flags.kind() == pt::MessageKind::Close) {
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
            std::array<std::byte, ws::kMaxControlPayload> body{};
            const size_t n = ws::write_close_payload(body, ws::CloseCode::InternalError,
                                                     "invalid close from the far side");
            queue_close({body.data(), n});
        } else {
            queue_close(payload);
        }
        send_more();
        return;
    }
    if (size == 0 && !flags.end_message()) {
        return;  // an empty piece inside a message adds no frame
    }
    const ws::Opcode op = out_in_message_                         ? ws::Opcode::Continuation
                          : flags.kind() == pt::MessageKind::Text ? ws::Opcode::Text
                                                                  : ws::Opcode::Binary;
    out_in_message_ = !flags.end_message();
    if (!queue_frames(op, data.span(), flags.end_message())) {
        return;
    }
    data.reset();  // the tunnel buffer goes back now; its masked copy waits in out_
    send_more();
}

bool WsUpstreamLeg::reserve(size_t need) noexcept {
    // A node's tag counts its non-credit bytes: seal before it could pass 255.
    if (staging_overhead_ + ws::kMaxControlFrameSize > 255) {
        seal();
    }
    if (!staging_.empty() && staging_.size() - staging_end_ >= need) {
        return true;
    }
    seal();
    staging_ = ctx_.local_pool.try_alloc();
    if (staging_.empty()) {
        owner_.log_refusal("websocket upstream", "no free buffer for a frame");
        fail(pt::ErrorCode::InternalError);
        return false;
    }
    staging_start_ = staging_end_ = 0;
    return true;
}

void WsUpstreamLeg::seal() noexcept {
    if (staging_end_ > staging_start_) {
        out_.push(ctx_.nodes, staging_.share(staging_start_, staging_end_ - staging_start_),
                  static_cast<uint8_t>(staging_overhead_));
        staging_start_ = staging_end_;
        staging_overhead_ = 0;
    }
}

bool WsUpstreamLeg::queue_frames(ws::Opcode op, std::span<const std::byte> payload,
                                 bool fin) noexcept {
    // Copy-and-mask in one pass into local buffers rather than masking in place: the piece is a
    // slice of a tunnel receive buffer that other slices (other streams' frames, or a record
    // still being parsed) share, and a Chunk cannot tell whether it is the only owner. Frames
    // are packed one after another, so many small messages share a buffer.
    do {
        if (!reserve(ws::kMaxFrameHeaderSize +
                     std::min<size_t>(payload.size(), kMinFramePayload))) {
            return false;
        }
        std::byte* at = staging_.data() + staging_end_;
        const size_t room = staging_.size() - staging_end_ - ws::kMaxFrameHeaderSize;
        const size_t n = std::min(room, payload.size());
        const bool last = n == payload.size();
        const ws::MaskKey key = owner_.keys_.next();
        const size_t hlen = ws::write_frame_header(
            std::span<std::byte, ws::kMaxFrameHeaderSize>(at, ws::kMaxFrameHeaderSize), op,
            fin && last, n, key);
        mask_copy(at + hlen, payload.first(n), key);
        staging_end_ += static_cast<uint32_t>(hlen + n);
        staging_overhead_ += hlen;
        payload = payload.subspan(n);
        op = ws::Opcode::Continuation;
    } while (!payload.empty());
    return true;
}

bool WsUpstreamLeg::queue_control(ws::Opcode op, std::span<const std::byte> payload) noexcept {
    if (!reserve(ws::kMaxControlFrameSize)) {
        return false;
    }
    const size_t len =
        ws::write_control_frame(std::span<std::byte, ws::kMaxControlFrameSize>(
                                    staging_.data() + staging_end_, ws::kMaxControlFrameSize),
                                op, payload, owner_.keys_.next());
    staging_end_ += static_cast<uint32_t>(len);
    staging_overhead_ += len;  // a control frame carries no tunnel credit
    return true;
}

void WsUpstreamLeg::queue_close(std::span<const std::byte> payload) noexcept {
    if (close_queued_) {
        return;
    }
    if (!queue_control(ws::Opcode::Close, payload)) {
        return;
    }
    close_queued_ = true;
    if (phase_ == Phase::Open) {
        phase_ = Phase::Closing;
    }
    if (phase_ == Phase::Closing) {
        set_deadline(ctx_.now_ns + owner_.options_.close_ns);
    }
}

void WsUpstreamLeg::on_stream_fin() noexcept {
    fin_from_peer_ = true;
    if (!close_queued_ && !closing_) {
        // The client side ended without a Close message: it went away.
        std::array<std::byte, ws::kMaxControlPayload> body{};
        const size_t n =
            ws::write_close_payload(body, ws::CloseCode::GoingAway, "the far side went away");
        queue_close({body.data(), n});
    }
    send_more();
    maybe_done();
}

void WsUpstreamLeg::on_stream_reset(pt::ErrorCode code) noexcept {
    FERRY_LOG(Debug, "websocket upstream stream reset: %s", pt::error_code_name(code));
    stream_ = nullptr;
    close();
}

void WsUpstreamLeg::send_more() noexcept {
    if (closing_ || io_.sending() || (phase_ != Phase::Open && phase_ != Phase::Closing)) {
        return;
    }
    seal();
    uint32_t n = 0;
    uint64_t bytes = 0;
    uint64_t credit = 0;
    for (buf::ChunkNode* node = out_.head(); node != nullptr && n < kMaxIov; node = node->next) {
        iov_[n].iov_base = node->chunk.data();
        iov_[n].iov_len = node->chunk.size();
        bytes += node->chunk.size();
        credit += node->chunk.size() - node->tag;
        ++n;
    }
    if (n == 0) {
        staging_.reset();  // an idle leg holds no buffer
        maybe_done();
        return;
    }
    sending_nodes_ = n;
    sending_credit_ = credit;
    io_.send(iov_, n, bytes);
}

void WsUpstreamLeg::on_socket_sent() noexcept {
    // After the Upgrade request sending_nodes_ is 0: nothing to drop, no credit.
    for (uint32_t i = 0; i < sending_nodes_; ++i) {
        (void)out_.pop(ctx_.nodes);
    }
    sending_nodes_ = 0;
    metrics_.bytes_to_local.add(sending_credit_);
    if (stream_ != nullptr && sending_credit_ > 0) {
        stream_->consumed(static_cast<uint32_t>(sending_credit_));
    }
    sending_credit_ = 0;
    send_more();
}

// ---- lifetime ---------------------------------------------------------------------------------

void WsUpstreamLeg::maybe_done() noexcept {
    // Done once both Close frames crossed and ours is written: the stream has our Close message
    // and FIN (finished_), and what the peer still sends is dropped by the session.
    if (closing_ || !close_received_ || !close_queued_ || !out_.empty() ||
        staging_end_ > staging_start_ || io_.sending()) {
        return;
    }
    release_stream();
    close();
}

void WsUpstreamLeg::fail(pt::ErrorCode code) noexcept {
    if (stream_ != nullptr) {
        tunnel::Stream* s = stream_;
        stream_ = nullptr;
        s->reset(code);
    }
    close();
}

void WsUpstreamLeg::release_stream() noexcept {
    if (stream_ == nullptr) {
        return;
    }
    tunnel::Stream* s = stream_;
    stream_ = nullptr;
    if (!finished_) {
        s->finish();
        finished_ = true;
    }
    s->detach();
}

void WsUpstreamLeg::close() noexcept {
    if (closing_) {
        return;
    }
    closing_ = true;
    connect_over();
    owner_.unwatch_deadline(this);
    if (stream_ != nullptr) {
        tunnel::Stream* s = stream_;
        stream_ = nullptr;
        s->reset(pt::ErrorCode::Cancel);
    }
    out_.clear(ctx_.nodes);
    staging_.reset();
    staging_start_ = staging_end_ = 0;
    abandon();
    io_.close();
}

void WsUpstreamLeg::abandon() noexcept {
    response_.reset();
    // swap, not assignment: moving an empty string in may keep the old buffer.
    std::string().swap(request_);
    std::string().swap(protocols_);
}

void WsUpstreamLeg::on_socket_closed() noexcept { ctx_.defer_retire(this); }

void WsUpstreamLeg::retire() noexcept {
    metrics_.connections_active.add(-1);
    if (slot_ != nullptr) {
        slot_->release();
    }
    owner_.unlink(this);
    owner_.legs_.destroy(this);
}

// ---- WsUpstreams ------------------------------------------------------------------------------

WsUpstreams::WsUpstreams(loop::Context& ctx, Metrics& metrics, ServiceUrl upstream,
                         WsUpstreamOptions options) noexcept
    : ctx_(ctx), metrics_(metrics), upstream_(std::move(upstream)), options_(std::move(options)) {}

WsUpstreams::~WsUpstreams() {
    // The shard forgets pending retirements after its services are gone; the pool abandons the
    // legs, after they let go of their heap memory.
    for (WsUpstreamLeg* leg = live_; leg != nullptr; leg = leg->live_next) {
        leg->abandon();
    }
}

tunnel::OpenDecision WsUpstreams::open(tunnel::Session& session, tunnel::Stream& stream,
                                       const pt::Open& open) noexcept {
    if (draining_) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream, "draining");
    }
    uint32_t& connecting = connecting_[&session];
    const auto refuse = [&](const char* reason) {
        if (connecting == 0) {
            connecting_.erase(&session);
        }
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream, reason);
    };
    if (connecting >= options_.per_tunnel_connects) {
        metrics_.upstream_connects_refused.add();
        return refuse("too many upstream connects in flight for this tunnel connection");
    }
    if (!options_.process->upstream_connects.try_acquire()) {
        metrics_.upstream_connects_refused.add();
        return refuse("too many upstream connects in flight (process)");
    }
    if (!options_.process->connections.try_acquire()) {
        options_.process->upstream_connects.release();
        metrics_.connections_rejected.add();
        return refuse("--max-connections reached in this process");
    }
    ++connecting;
    metrics_.upstream_connects_in_flight.add(1);
    WsUpstreamLeg* leg = legs_.create(ctx_, metrics_, *this);
    leg->live_next = live_;
    if (live_ != nullptr) {
        live_->live_prev = leg;
    }
    live_ = leg;
    leg->hold_slot(&options_.process->connections);
    leg->watch_connect(this, &session);
    if (!leg->start(upstream_, &stream, open)) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::ConnectRefused,
                                            "no socket or request for the websocket upstream");
    }
    metrics_.connections_accepted.add();
    return tunnel::OpenDecision::accept(leg);
}

void WsUpstreams::tick(uint64_t now_ns) noexcept {
    WsUpstreamLeg* leg = deadlines_;
    while (leg != nullptr) {
        WsUpstreamLeg* next = leg->deadline_next;  // on_deadline unlinks the leg
        if (now_ns >= leg->deadline_ns()) {
            leg->on_deadline();
        }
        leg = next;
    }
}

void WsUpstreams::watch_deadline(WsUpstreamLeg* leg) noexcept {
    leg->deadline_watched = true;
    leg->deadline_prev = nullptr;
    leg->deadline_next = deadlines_;
    if (deadlines_ != nullptr) {
        deadlines_->deadline_prev = leg;
    }
    deadlines_ = leg;
}

void WsUpstreams::unwatch_deadline(WsUpstreamLeg* leg) noexcept {
    if (!leg->deadline_watched) {
        return;
    }
    leg->deadline_watched = false;
    if (leg->deadline_prev != nullptr) {
        leg->deadline_prev->deadline_next = leg->deadline_next;
    } else {
        deadlines_ = leg->deadline_next;
    }
    if (leg->deadline_next != nullptr) {
        leg->deadline_next->deadline_prev = leg->deadline_prev;
    }
    leg->deadline_prev = leg->deadline_next = nullptr;
}

void WsUpstreams::on_connect_over(const void* tunnel) noexcept {
    options_.process->upstream_connects.release();
    metrics_.upstream_connects_in_flight.add(-1);
    auto it = connecting_.find(tunnel);
    if (it != connecting_.end() && --it->second == 0) {
        connecting_.erase(it);
    }
}

void WsUpstreams::unlink(WsUpstreamLeg* leg) noexcept {
    if (leg->live_prev != nullptr) {
        leg->live_prev->live_next = leg->live_next;
    } else if (live_ == leg) {
        live_ = leg->live_next;
    }
    if (leg->live_next != nullptr) {
        leg->live_next->live_prev = leg->live_prev;
    }
    leg->live_prev = leg->live_next = nullptr;
}

}  // namespace ferry::role
