#include "ferry/tunnel/session.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ferry/base/check.h"
#include "ferry/base/clock.h"
#include "ferry/base/log.h"
#include "ferry/proto/tunnel/frame_encoder.h"

namespace ferry::tunnel {

namespace pt = proto::tunnel;

namespace {
// Peer text for the log: bounded, and escaped so it can never forge a log line.
std::string escaped(std::string_view text) {
    text = text.substr(0, 256);
    return absl::CHexEscape(absl::string_view(text.data(), text.size()));
}
}  // namespace

// Adapts transport callbacks to the Session without making Session itself a TransportSink.
class Session::TransportEvents final : public transport::TransportSink {
  public:
    explicit TransportEvents(Session* s) noexcept : s_(s) {}
    void on_transport_read(buf::Chunk&& bytes) noexcept override {
        s_->transport_read(std::move(bytes));
    }
    void on_transport_written() noexcept override { s_->transport_written(); }
    void on_transport_down(const char* reason, int err) noexcept override {
        s_->transport_down(reason, err);
    }
    void on_transport_quiescent() noexcept override { s_->transport_quiescent(); }
    void on_transport_established() noexcept override { s_->transport_established(); }
    void on_transport_rotation_due(const char* why) noexcept override {
        s_->owner_->on_session_rotation_due(*s_, why);
    }

  private:
    Session* s_;
};

// ---- Stream -----------------------------------------------------------------------------------

void Stream::write(buf::Chunk&& data, pt::DataFlags flags) noexcept {
    // Only an empty message may be empty; FIN travels with finish(), never here.
    if ((data.size() == 0 && !flags.end_message()) || fin_queued_) {
        return;
    }
    flags.bits &= static_cast<uint8_t>(~pt::kFlagFin);
    out_.push(session_->ctx_.nodes, std::move(data), flags.bits);
    session_->stream_has_output(*this);
}

bool Stream::finish_with_trailers(std::span<const pt::MetadataEntry> trailers) noexcept {
    return session_->stream_trailers(*this, trailers);
}

bool Stream::accept(std::span<const pt::MetadataEntry> metadata) noexcept {
    return session_->stream_accept(*this, metadata);
}

void Stream::finish() noexcept {
    if (!fin_queued_) {
        fin_queued_ = true;
        session_->stream_has_output(*this);
    }
}

void Stream::reset(pt::ErrorCode code) noexcept { session_->stream_reset_locally(*this, code); }

void Stream::consumed(uint32_t n) noexcept { session_->stream_consumed(*this, n); }

void Stream::detach() noexcept {
    handler_ = nullptr;
    session_->stream_maybe_done(*this);
}

bool Stream::should_pause() noexcept {
    // One window queued here is all the peer can take before it grants more, so anything
    // beyond it would only grow memory.
    if (out_.bytes() >= session_->env_.tuning.stream_window) {
        want_writable_ = true;
        return true;
    }
    return false;
}

// ---- Session ----------------------------------------------------------------------------------

Session::Session(const SessionEnv& env, SessionOwner* owner,
                 std::unique_ptr<transport::Transport> transport, Role role,
                 std::string_view node_name) noexcept
    : env_(env),
      ctx_(env.loop),
      owner_(owner),
      transport_(std::move(transport)),
      transport_events_(std::make_unique<TransportEvents>(this)),
      role_(role),
      node_name_(node_name),
      next_stream_id_(role == Role::Initiator ? 1 : 2),
      conn_recv_(env.tuning.connection_window) {}

Session::~Session() {
    ctx_.buffer_waits.cancel(this);
    if (batch_ != nullptr) {
        batch_->owned.clear(ctx_.nodes);
    }
    ctrl_full_.clear(ctx_.nodes);
}

void Session::start() noexcept {
    last_ping_ns_ = ctx_.now_ns;
    transport_->start(transport_events_.get());
    if (transport_->established()) {
        send_hello();
    }
}

void Session::transport_established() noexcept {
    FERRY_LOG(Debug, "tunnel transport established: %s", transport_->kind());
    send_hello();
}

// Our preface and HELLO lead everything we send. Input can come before the transport says it is
// established (records that arrived with the peer's TLS Finished): the peer's HELLO among them
// makes the session open, and what the owner then queues must follow our HELLO.

void Session::prepare_io() noexcept {
    // Made once the transport carries bytes: a connection that never gets through its
    // handshake (anyone can open one) costs no write batch and no decoder buffer.
    if (batch_ == nullptr) {
        batch_ = std::make_unique<transport::WriteBatch>();
    }
    if (!decoder_.has_value()) {
        decoder_.emplace(sink_, env_.tuning.max_frame_size);
    }
}

void Session::send_hello() noexcept {
    if (hello_sent_) {
        return;
    }
    hello_sent_ = true;
    prepare_io();
    std::span<std::byte> out = control_space(pt::kPrefaceSize);
    control_commit(pt::encode_preface(out));
    pt::HelloSettings hello;
    hello.max_frame_size = env_.tuning.max_frame_size;
    hello.initial_stream_window = env_.tuning.stream_window;
    hello.connection_window = env_.tuning.connection_window;
    hello.max_streams = env_.tuning.max_streams;
    hello.capabilities = transport_->capabilities() | pt::kCapabilityMessages;
    hello.node_name = node_name_;
    hello.shards = env_.tuning.shards;
    out = control_space(pt::hello_frame_size(hello));
    size_t n = pt::encode_hello(out, hello);
    FERRY_CHECK(n > 0);
    control_commit(n);
    mark_dirty();
}

Stream* Session::open_stream(pt::StreamProtocol protocol, std::string_view routing_key,
                             std::span<const pt::MetadataEntry> metadata,
                             StreamHandler* handler) noexcept {
    if (state_ != State::Open || streams_.size() >= peer_max_streams_ ||
        next_stream_id_ > 0x7fff'fffeU) {
        return nullptr;
    }
    // Message protocols need message boundaries on the wire: a v1 peer cannot carry them.
    if (protocol != pt::StreamProtocol::Tcp && !messages_) {
        return nullptr;
    }
    const size_t need = pt::open_frame_size(protocol, routing_key, metadata);
    if (need == 0 || need - pt::kFrameHeaderSize > peer_max_frame_) {
        return nullptr;
    }
    std::span<std::byte> out = control_space(need);
    if (out.empty()) {
        return nullptr;
    }
    uint32_t id = next_stream_id_;
    next_stream_id_ += 2;
    size_t n = pt::encode_open(out, id, protocol, routing_key, metadata);
    FERRY_CHECK(n == need);
    control_commit(n);
    Stream* s = stream_pool_.create(this, id, protocol, peer_stream_window_,
                                    env_.tuning.stream_window, handler);
    streams_.emplace(id, s);
    env_.metrics.streams_opened.add();
    env_.metrics.streams_active.add(1);
    mark_dirty();
    return s;
}

namespace {
// The opaque value of a drain's PING; RTT pings carry a monotonic time, which never reaches it.
constexpr uint64_t kDrainPingOpaque = ~0ULL;
}  // namespace

void Session::drain() noexcept {
    if (state_ == State::Closing || state_ == State::Closed || state_ == State::Hello) {
        if (state_ == State::Hello) {
            abort("drained before the peer's HELLO");
        }
        return;
    }
    if (state_ != State::Draining) {
        state_ = State::Draining;
    }
    if (drain_step_ == 0) {
        // RFC 9113 §6.8: announce first (no new streams, please), learn after a round trip which
        // OPENs crossed the announcement, then name the last one served.
        drain_step_ = 1;
        drain_started_ns_ = ctx_.now_ns;
        send_drain_goaway();
        if (write_ping(false, kDrainPingOpaque)) {
            mark_dirty();
        }
    }
    maybe_finish_drain();
}

void Session::finish_drain_announcement() noexcept {
    if (drain_step_ != 1) {
        return;
    }
    drain_step_ = 2;
    send_drain_goaway();
    maybe_finish_drain();
}

void Session::maybe_finish_drain() noexcept {
    if (state_ == State::Draining && streams_.empty() && (drain_step_ == 0 || drain_step_ == 2)) {
        FERRY_LOG(Debug, "tunnel %s: drained, closing", peer_name_);
        state_ = State::Closing;
        close_after_flush_ = true;
        mark_dirty();
    }
}

void Session::abort(const char* reason) noexcept {
    if (state_ == State::Closed) {
        return;
    }
    // Before HELLO the owner says why, with the peer's address and rate-limited: a peer can
    // provoke this at will.
    if (!hello_exchanged_) {
        FERRY_LOG(Debug, "tunnel connection closing before HELLO: %s", reason);
    } else {
        FERRY_LOG(Info, "tunnel to %s: closing: %s", peer_name_.empty() ? "?" : peer_name_, reason);
    }
    close_reason_ = reason;
    state_ = State::Closed;
    // Shutdown: the streams did nothing wrong, the connection under them went; their clients may
    // retry (WebSocket 1012, gRPC UNAVAILABLE).
    reset_all_streams(pt::ErrorCode::Shutdown);
    if (!transport_closed_) {
        transport_closed_ = true;
        transport_->close();
    }
}

void Session::tick(uint64_t now_ns) noexcept {
    if (state_ != State::Open && state_ != State::Draining) {
        return;
    }
    transport_->tick(now_ns);
    if (drain_step_ == 1 && now_ns - drain_started_ns_ > env_.tuning.ping_timeout_ns) {
        finish_drain_announcement();  // the drain's PING went unanswered: name the last stream
    }
    if (ping_outstanding_ns_ != 0) {
        const uint64_t waited = now_ns - ping_outstanding_ns_;
        const uint32_t threshold = env_.tuning.peer_failure_threshold;
        if (threshold != 0 && waited > threshold * env_.tuning.ping_interval_ns &&
            threshold * env_.tuning.ping_interval_ns < env_.tuning.ping_timeout_ns) {
            fail(pt::ErrorCode::Timeout,
                 "the peer missed --peer-failure-threshold ping intervals in a row");
            return;
        }
        if (waited > env_.tuning.ping_timeout_ns) {
            fail(pt::ErrorCode::Timeout, "no PING acknowledgement within the ping timeout");
            return;
        }
    }
    if (ping_outstanding_ns_ == 0 && now_ns - last_ping_ns_ >= env_.tuning.ping_interval_ns) {
        // With no buffer free the PING waits for a later tick; its timeout starts once it is out.
        if (write_ping(false, now_ns)) {
            last_ping_ns_ = now_ns;
            ping_outstanding_ns_ = now_ns;
            mark_dirty();
        }
    }
}

void Session::dump() const noexcept {
    FERRY_LOG(Info,
              "tunnel %s over %s: state %d, %zu streams, conn send credit %u, conn recv "
              "available %u unacked %u, writing %d, ctrl queued %u+%u, ready list %s",
              peer_name_, transport_->kind(), static_cast<int>(state_), streams_.size(),
              conn_send_.available(), conn_recv_.available(), conn_recv_.unacked(), writing_,
              ctrl_full_.count(), ctrl_used_ - ctrl_sent_,
              ready_head_ != nullptr ? "busy" : "empty");
    for (const auto& [id, s] : streams_) {
        FERRY_LOG(Info,
                  "  stream %u: send credit %u, queued %u bytes in %u chunks, recv available %u "
                  "unacked %u, fin queued/sent/received %d/%d/%d, ready %d, wants writable %d, "
                  "handler %s",
                  id, s->send_.available(), static_cast<uint32_t>(s->out_.bytes()), s->out_.count(),
                  s->recv_.available(), s->recv_.unacked(), s->fin_queued_, s->fin_sent_,
                  s->fin_received_, s->in_ready_, s->want_writable_,
                  s->handler_ != nullptr ? "attached" : "detached");
    }
}

// ---- output -----------------------------------------------------------------------------------

std::span<std::byte> Session::control_space(size_t n) noexcept {
    if (ctrl_.empty() || ctrl_used_ + n > ctrl_.capacity()) {
        // Start a fresh control buffer. What the old one holds unsent queues up behind it (a
        // burst of OPENs while a write is in flight); slices already sent stay alive in the batch.
        buf::Chunk fresh = ctx_.alloc_tunnel_chunk();
        if (fresh.empty() || n > fresh.capacity()) {
            return {};
        }
        if (ctrl_used_ > ctrl_sent_) {
            ctrl_full_.push(ctx_.nodes, ctrl_.share(ctrl_sent_, ctrl_used_ - ctrl_sent_));
        }
        ctrl_used_ = 0;
        ctrl_sent_ = 0;
        ctrl_ = std::move(fresh);
    }
    return {ctrl_.data() + ctrl_used_, n};
}

void Session::control_commit(size_t n) noexcept {
    ctrl_used_ += static_cast<uint32_t>(n);
    env_.metrics.frames_out.add();
}

void Session::send_credit(uint32_t stream_id, pt::RecvWindow& window, uint32_t increment) noexcept {
    std::span<std::byte> out = control_space(pt::kWindowFrameSize);
    if (out.empty()) {
        window.unsend(increment);
        owe_credit_ = true;
        ctx_.buffer_waits.park(this);
        return;
    }
    control_commit(pt::encode_window(out, stream_id, increment));
    mark_dirty();
}

bool Session::write_reset(uint32_t stream_id, pt::ErrorCode code, const char* reason) noexcept {
    // A v1 peer takes a 4-byte RESET only.
    std::string_view text = messages_ && reason != nullptr ? std::string_view(reason) : "";
    text = text.substr(0, pt::kMaxResetReasonSize);
    std::span<std::byte> out = control_space(pt::reset_frame_size(text));
    if (out.empty()) {
        return false;
    }
    control_commit(pt::encode_reset(out, stream_id, code, text));
    env_.metrics.resets_sent.add();
    return true;
}

bool Session::write_ping(bool ack, uint64_t opaque) noexcept {
    std::span<std::byte> out = control_space(pt::kPingFrameSize);
    if (out.empty()) {
        return false;
    }
    control_commit(pt::encode_ping(out, ack, opaque));
    return true;
}

bool Session::write_goaway(uint32_t last_stream_id, pt::ErrorCode code,
                           std::string_view debug) noexcept {
    std::span<std::byte> out = control_space(pt::goaway_frame_size(debug));
    if (out.empty()) {
        return false;
    }
    control_commit(pt::encode_goaway(out, last_stream_id, code, debug));
    return true;
}

buf::Chunk Session::carve(size_t n) noexcept {
    if (side_.empty() || side_used_ + n > side_.capacity()) {
        buf::Chunk fresh = ctx_.alloc_tunnel_chunk();
        if (fresh.empty() || n > fresh.capacity()) {
            return {};
        }
        side_ = std::move(fresh);
        side_used_ = 0;
    }
    buf::Chunk piece = side_.share(side_used_, static_cast<uint32_t>(n));
    side_used_ += static_cast<uint32_t>(n);
    return piece;
}

void Session::send_reset(uint32_t stream_id, pt::ErrorCode code, const char* reason) noexcept {
    if (write_reset(stream_id, code, reason)) {
        mark_dirty();
        return;
    }
    if (owed_resets_.size() == owed_resets_.capacity()) {
        fail(pt::ErrorCode::InternalError, "out of buffers for control frames");
        return;
    }
    owed_resets_.push_back({stream_id, code, reason});
    ctx_.buffer_waits.park(this);
}

void Session::send_drain_goaway() noexcept {
    // First the announcement (every stream may still come), then the last one really served.
    const uint32_t last = drain_step_ == 2 ? last_peer_stream_id_ : pt::kMaxStreamId;
    owe_goaway_ = !write_goaway(last, pt::ErrorCode::NoError, "drain");
    if (owe_goaway_) {
        ctx_.buffer_waits.park(this);
        return;
    }
    mark_dirty();
}

bool Session::owes_control() const noexcept {
    return owe_credit_ || owe_goaway_ || owe_accept_ || owed_ping_ack_.has_value() ||
           !owed_resets_.empty();
}

void Session::pay_owed_control() noexcept {
    if (owe_goaway_) {
        send_drain_goaway();
    }
    if (owed_ping_ack_.has_value() && write_ping(true, *owed_ping_ack_)) {
        owed_ping_ack_.reset();
    }
    size_t paid = 0;
    while (paid < owed_resets_.size() &&
           write_reset(owed_resets_[paid].stream_id, owed_resets_[paid].code,
                       owed_resets_[paid].reason)) {
        ++paid;
    }
    owed_resets_.erase(owed_resets_.begin(), owed_resets_.begin() + static_cast<ptrdiff_t>(paid));
    if (owe_accept_) {
        owe_accept_ = false;
        for (auto& [id, s] : streams_) {
            if (!s->accept_owed_) {
                continue;
            }
            if (!write_open_ack(id, {})) {
                owe_accept_ = true;
                break;
            }
            s->accept_owed_ = false;
            if (stream_sendable(*s)) {
                ready_push(s);
            }
        }
    }
    if (owe_credit_) {
        // Credit coalesced while owed: one WINDOW per stream carries all it has consumed.
        owe_credit_ = false;
        for (auto& [id, s] : streams_) {
            if (s->recv_.unacked() > 0 && !s->fin_received_) {
                send_credit(id, s->recv_, s->recv_.take_unacked());
            }
        }
        if (conn_recv_.unacked() > 0) {
            send_credit(0, conn_recv_, conn_recv_.take_unacked());
        }
    }
    if (owes_control()) {
        ctx_.buffer_waits.park(this);
    }
}

void Session::retry_after_buffer_wait() noexcept {
    if (owes_control()) {
        flush();
    }
}

void Session::mark_dirty() noexcept {
    if (!transport_closed_) {
        // Flushed after the CQE batch, so many frames share one write.
        ctx_.queue_flush(this);
    }
}

bool Session::stream_sendable(const Stream& s) const noexcept {
    if (s.accept_owed_) {
        return false;  // its OPEN_ACK must go first
    }
    if (!s.out_.empty()) {
        // An empty message needs no credit.
        return s.send_.available() > 0 || s.out_.head()->chunk.size() == 0;
    }
    return s.fin_queued_ && !s.fin_sent_;
}

void Session::stream_has_output(Stream& s) noexcept {
    if (!s.accepted_) {
        // A handler that answers has accepted the stream: the OPEN_ACK goes first.
        (void)stream_accept(s, {});
    }
    if (!s.in_ready_ && stream_sendable(s)) {
        ready_push(&s);
    }
    mark_dirty();
}

void Session::ready_push(Stream* s) noexcept {
    // Idempotent: a handler may queue output from on_stream_writable() while flush() holds the
    // stream popped; pushing it twice would loop the list onto itself.
    if (s->in_ready_) {
        return;
    }
    s->in_ready_ = true;
    s->ready_next_ = nullptr;
    s->ready_prev_ = ready_tail_;
    if (ready_tail_ != nullptr) {
        ready_tail_->ready_next_ = s;
    } else {
        ready_head_ = s;
    }
    ready_tail_ = s;
}

Stream* Session::ready_pop() noexcept {
    Stream* s = ready_head_;
    if (s != nullptr) {
        ready_remove(s);
    }
    return s;
}

void Session::ready_remove(Stream* s) noexcept {
    if (!s->in_ready_) {
        return;
    }
    if (s->ready_prev_ != nullptr) {
        s->ready_prev_->ready_next_ = s->ready_next_;
    } else {
        ready_head_ = s->ready_next_;
    }
    if (s->ready_next_ != nullptr) {
        s->ready_next_->ready_prev_ = s->ready_prev_;
    } else {
        ready_tail_ = s->ready_prev_;
    }
    s->ready_next_ = s->ready_prev_ = nullptr;
    s->in_ready_ = false;
}

bool Session::emit_data_frame(Stream& s) noexcept {
    transport::WriteBatch& b = *batch_;
    uint64_t room = env_.tuning.batch_bytes > b.bytes ? env_.tuning.batch_bytes - b.bytes : 0;
    uint64_t budget =
        std::min<uint64_t>({s.send_.available(), conn_send_.available(), peer_max_frame_, room});
    const bool empty_message = !s.out_.empty() && s.out_.head()->chunk.size() == 0;
    if (budget == 0 && !s.out_.empty() && !empty_message) {
        return false;
    }
    if (s.out_.empty() && !s.trailers_.empty()) {
        // The stream ends with TRAILERS in place of a FIN, after all of its data.
        b.add(s.trailers_.data(), s.trailers_.size());
        b.owned.push(ctx_.nodes, std::move(s.trailers_));
        s.fin_sent_ = true;
        env_.metrics.frames_out.add();
        return true;
    }
    std::byte* header = b.headers[b.headers_used++];
    b.add(header, pt::kFrameHeaderSize);
    uint32_t len = 0;
    // The frame's message flags: the kind of its first piece; END_MESSAGE when the piece that
    // ends a message went in whole.
    const uint8_t kind_bits =
        s.out_.empty() ? 0 : static_cast<uint8_t>(s.out_.head()->tag & pt::kMessageKindMask);
    bool end_message = false;
    // A frame gathers queued chunks up to the budget: small writes share one header. It never
    // crosses a message boundary (the receiver would lose it) nor mixes kinds.
    while (!s.out_.empty() && !end_message && !b.full(1)) {
        buf::ChunkNode* front = s.out_.head();
        if ((front->tag & pt::kMessageKindMask) != kind_bits) {
            break;
        }
        uint32_t take = front->chunk.size();
        if (take > budget) {
            if (budget == 0) {
                break;
            }
            // Split the piece: the rest (and its end-of-message mark) waits for more credit.
            take = static_cast<uint32_t>(budget);
            buf::Chunk piece = front->chunk.share(0, take);
            s.out_.consume(ctx_.nodes, take);
            b.add(piece.data(), take);
            b.owned.push(ctx_.nodes, std::move(piece));
            budget = 0;
            len += take;
            break;
        }
        end_message = (front->tag & pt::kFlagEndMessage) != 0;
        buf::Chunk piece = s.out_.pop(ctx_.nodes);
        if (take > 0) {
            b.add(piece.data(), take);
            b.owned.push(ctx_.nodes, std::move(piece));
        }
        budget -= take;
        len += take;
    }
    const bool fin = s.fin_queued_ && s.out_.empty() && s.trailers_.empty();
    FERRY_DCHECK(len > 0 || fin || end_message);
    const pt::DataFlags flags{static_cast<uint8_t>(
        kind_bits | (end_message ? pt::kFlagEndMessage : 0) | (fin ? pt::kFlagFin : 0))};
    size_t written = pt::encode_data_header(std::span<std::byte>(header, pt::kFrameHeaderSize),
                                            s.id_, len, flags);
    FERRY_DCHECK(written == pt::kFrameHeaderSize);
    (void)written;
    s.send_.consume(len);
    conn_send_.consume(len);
    env_.metrics.frames_out.add();
    if (fin) {
        s.fin_sent_ = true;
    }
    if (s.want_writable_ && s.out_.bytes() <= env_.tuning.stream_window / 2 &&
        s.handler_ != nullptr) {
        s.want_writable_ = false;
        s.handler_->on_stream_writable();
    }
    return true;
}

void Session::flush() noexcept {
    if (writing_ || transport_closed_ || batch_ == nullptr) {
        return;  // nothing is written before the transport is established (send_hello)
    }
    if (owes_control()) {
        pay_owed_control();
    }
    transport::WriteBatch& b = *batch_;
    b.iov_count = 0;
    b.bytes = 0;
    b.headers_used = 0;
    while (!ctrl_full_.empty() && !b.full(1)) {
        buf::Chunk c = ctrl_full_.pop(ctx_.nodes);
        b.add(c.data(), c.size());
        b.owned.push(ctx_.nodes, std::move(c));
    }
    if (ctrl_full_.empty() && ctrl_used_ > ctrl_sent_ && !b.full(1)) {
        buf::Chunk slice = ctrl_.share(ctrl_sent_, ctrl_used_ - ctrl_sent_);
        b.add(slice.data(), slice.size());
        b.owned.push(ctx_.nodes, std::move(slice));
        ctrl_sent_ = ctrl_used_;
    }
    if (state_ == State::Open || state_ == State::Draining || state_ == State::Closing) {
        // Round-robin: each ready stream gets one frame per turn, then goes to the back.
        Stream* first_blocked = nullptr;
        while (ready_head_ != nullptr && !b.full(3) && b.bytes < env_.tuning.batch_bytes &&
               conn_send_.available() > 0) {
            Stream* s = ready_pop();
            if (s == first_blocked) {
                ready_push(s);
                break;
            }
            if (!emit_data_frame(*s)) {
                if (first_blocked == nullptr) {
                    first_blocked = s;
                }
                ready_push(s);
                continue;
            }
            if (stream_sendable(*s)) {
                ready_push(s);
            } else if (s->fin_sent_) {
                stream_maybe_done(*s);
            }
        }
        // A stream waiting only to send its FIN needs no credit.
        for (Stream* s = ready_head_; s != nullptr && !b.full(1);) {
            Stream* next = s->ready_next_;
            if (s->out_.empty() && s->fin_queued_ && !s->fin_sent_) {
                ready_remove(s);
                if (emit_data_frame(*s)) {
                    stream_maybe_done(*s);
                }
            }
            s = next;
        }
    }
    if (b.iov_count == 0) {
        if (close_after_flush_ && !transport_closed_) {
            transport_closed_ = true;
            transport_->close();
        }
        return;
    }
    writing_ = true;
    if (peer_counters_ != nullptr) {
        peer_counters_->bytes_out.add(b.bytes);
    }
    transport_->write(b.iov, b.iov_count, b.bytes);
}

// ---- transport events -------------------------------------------------------------------------

void Session::transport_written() noexcept {
    writing_ = false;
    batch_->owned.clear(ctx_.nodes);
    if (!transport_closed_) {
        flush();
    }
}

void Session::transport_read(buf::Chunk&& bytes) noexcept {
    if (state_ == State::Closed) {
        return;
    }
    send_hello();
    if (peer_counters_ != nullptr) {
        peer_counters_->bytes_in.add(bytes.size());
    }
    reading_ = &bytes;
    pt::DecodeResult r = decoder_->feed(std::span<const std::byte>(bytes.data(), bytes.size()));
    reading_ = nullptr;
    if (r.status == pt::DecodeStatus::Error) {
        fail(r.code, r.detail);
    }
}

void Session::transport_down(const char* reason, int err) noexcept {
    if (state_ == State::Closed) {
        return;
    }
    bool expected = state_ == State::Closing || state_ == State::Draining;
    if (close_reason_.empty()) {
        close_reason_ = reason;
    }
    if (!hello_exchanged_) {
        // Before HELLO the owner reports it (handshake refusal, connect loss), rate-limited.
        FERRY_LOG(Debug, "tunnel connection closed before HELLO: %s", reason);
    } else if (err != 0) {
        FERRY_LOG(Warn, "tunnel %s: connection lost: %s: %s", peer_name_.empty() ? "?" : peer_name_,
                  reason, strerror(err));
    } else if (expected) {
        FERRY_LOG(Info, "tunnel %s: closed: %s", peer_name_.empty() ? "?" : peer_name_, reason);
    } else {
        FERRY_LOG(Warn, "tunnel %s: connection lost: %s", peer_name_.empty() ? "?" : peer_name_,
                  reason);
    }
    state_ = State::Closed;
    reset_all_streams(pt::ErrorCode::Shutdown);
    if (!transport_closed_) {
        transport_closed_ = true;
        transport_->close();
    }
}

void Session::transport_quiescent() noexcept {
    state_ = State::Closed;
    if (batch_ != nullptr) {
        batch_->owned.clear(ctx_.nodes);
    }
    ctrl_full_.clear(ctx_.nodes);
    ctrl_.reset();
    side_.reset();
    owner_->on_session_closed(*this);
}

void Session::fail(pt::ErrorCode code, const char* detail) noexcept {
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    env_.metrics.tunnel_protocol_errors.add();
    close_reason_ = absl::StrCat(pt::error_code_name(code), ": ", detail);
    if (!hello_exchanged_) {
        // A scanner or a stray client: the owner logs it with the peer address, rate-limited.
        FERRY_LOG(Debug, "tunnel connection: protocol error %s before HELLO; closing",
                  close_reason_);
    } else {
        FERRY_LOG(Warn, "tunnel %s: protocol error %s; closing the connection",
                  peer_name_.empty() ? "?" : peer_name_, close_reason_);
    }
    state_ = State::Closing;
    // A peer that stopped answering is gone, not slow: its streams may be retried elsewhere.
    reset_all_streams(code == pt::ErrorCode::Timeout ? pt::ErrorCode::Shutdown : code);
    // Best effort: the connection closes either way.
    (void)write_goaway(last_peer_stream_id_, code, detail);
    close_after_flush_ = true;
    mark_dirty();
}

void Session::reset_all_streams(pt::ErrorCode code) noexcept {
    // Handlers drop their Stream* in on_stream_reset, so collect first, then notify.
    while (!streams_.empty()) {
        Stream* s = streams_.begin()->second;
        StreamHandler* h = s->handler_;
        destroy_stream(s);
        if (h != nullptr) {
            h->on_stream_reset(code);
        }
    }
    ready_head_ = ready_tail_ = nullptr;
}

void Session::destroy_stream(Stream* s) noexcept {
    // Bytes the handler received but never consumed (it drops them with the stream) still count
    // against the connection window: give that credit back, or each reset shrinks the tunnel.
    if (uint32_t held = s->recv_.buffered(); held > 0) {
        stream_consumed_conn_only(held);
    }
    FERRY_LOG(Debug, "stream %u closed (fin sent %d, fin received %d, %u bytes unsent)", s->id_,
              s->fin_sent_, s->fin_received_, static_cast<uint32_t>(s->out_.bytes()));
    ready_remove(s);
    s->out_.clear(ctx_.nodes);
    streams_.erase(s->id_);
    stream_pool_.destroy(s);
    env_.metrics.streams_active.add(-1);
}

void Session::stream_reset_locally(Stream& s, pt::ErrorCode code) noexcept {
    uint32_t id = s.id_;
    destroy_stream(&s);
    if (state_ != State::Closed) {
        send_reset(id, code);
    }
    maybe_finish_drain();
}

void Session::stream_maybe_done(Stream& s) noexcept {
    if (s.handler_ == nullptr && s.fin_sent_ && s.fin_received_) {
        destroy_stream(&s);
        maybe_finish_drain();
    } else if (s.handler_ == nullptr && !s.fin_received_ && s.fin_sent_) {
        // Our side is done and gone; nobody will read the rest of the peer's data.
        uint32_t id = s.id_;
        destroy_stream(&s);
        send_reset(id, pt::ErrorCode::Cancel);
        maybe_finish_drain();
    }
}

void Session::stream_consumed(Stream& s, uint32_t n) noexcept {
    if (uint32_t inc = s.recv_.on_consumed(n); inc > 0 && !s.fin_received_) {
        send_credit(s.id_, s.recv_, inc);
    }
    stream_consumed_conn_only(n);
}

void Session::stream_consumed_conn_only(uint32_t n) noexcept {
    if (uint32_t inc = conn_recv_.on_consumed(n); inc > 0) {
        send_credit(0, conn_recv_, inc);
    }
}

// ---- FrameSink (through SessionFrameSink)
// --------------------------------------------------------------------------------

bool Session::on_hello(const pt::Hello& hello) noexcept {
    env_.metrics.frames_in.add();
    peer_name_ = std::string(hello.settings.node_name);
    peer_capabilities_ = hello.settings.capabilities;
    peer_shards_ = hello.settings.shards;
    messages_ = (peer_capabilities_ & pt::kCapabilityMessages) != 0;
    // Owed RESETs are bounded by the streams; reserved once, now that the peer authenticated.
    owed_resets_.reserve(env_.tuning.max_streams);
    transport_->set_peer_capabilities(peer_capabilities_);
    peer_max_frame_ = hello.settings.max_frame_size;
    peer_stream_window_ = hello.settings.initial_stream_window;
    peer_max_streams_ = hello.settings.max_streams;
    if (!conn_send_.grant(hello.settings.connection_window)) {
        fail(pt::ErrorCode::FlowControlError, "HELLO connection window too large");
        return false;
    }
    if (state_ == State::Hello) {
        state_ = State::Open;
        hello_exchanged_ = true;
        FERRY_LOG(Info,
                  "tunnel up: peer '%s' over %s (protocol %s, max frame %u, stream window %u)",
                  peer_name_, transport_->kind(), messages_ ? "v1.1" : "v1", peer_max_frame_,
                  peer_stream_window_);
        owner_->on_session_ready(*this);
    }
    return state_ != State::Closed;
}

bool Session::on_open(uint32_t stream_id, const pt::Open& open) noexcept {
    env_.metrics.frames_in.add();
    bool peer_parity = (stream_id & 1U) == (role_ == Role::Initiator ? 0U : 1U);
    if (!peer_parity || stream_id <= last_peer_stream_id_) {
        fail(pt::ErrorCode::ProtocolError, "OPEN with an invalid or reused stream id");
        return false;
    }
    last_peer_stream_id_ = stream_id;
    if (!messages_ && open.protocol != pt::StreamProtocol::Tcp) {
        // Message streams need message boundaries on the wire (docs/tunnel-protocol.md §6.2).
        env_.metrics.streams_refused.add();
        send_reset(stream_id, pt::ErrorCode::UnsupportedProtocol);
        return true;
    }
    // While our drain is only announced, OPENs that crossed the GOAWAY are still served.
    const bool taking = state_ == State::Open || (state_ == State::Draining && drain_step_ < 2);
    if (!taking) {
        send_reset(stream_id, pt::ErrorCode::RefusedStream, "the connection is draining");
        return true;
    }
    if (streams_.size() >= env_.tuning.max_streams) {
        env_.metrics.streams_refused.add();
        send_reset(stream_id, pt::ErrorCode::RefusedStream, "stream limit reached");
        return true;
    }
    Stream* s = stream_pool_.create(this, stream_id, open.protocol, peer_stream_window_,
                                    env_.tuning.stream_window, nullptr);
    streams_.emplace(stream_id, s);
    env_.metrics.streams_opened.add();
    env_.metrics.streams_active.add(1);
    OpenDecision d = owner_->on_stream_open(*this, *s, open);
    if (d.handler == nullptr) {
        env_.metrics.streams_refused.add();
        FERRY_LOG(Debug, "stream %u refused: %s", stream_id,
                  d.reason != nullptr ? d.reason : pt::error_code_name(d.code));
        destroy_stream(s);
        send_reset(stream_id, d.code, d.reason);
        return true;
    }
    s->handler_ = d.handler;
    return state_ != State::Closed;
}

Stream* Session::frame_stream(uint32_t stream_id, const char* frame, bool* failed) noexcept {
    *failed = false;
    auto it = streams_.find(stream_id);
    if (it != streams_.end()) {
        return it->second;
    }
    const bool seen =
        ours(stream_id) ? stream_id < next_stream_id_ : stream_id <= last_peer_stream_id_;
    if (!seen) {
        // The decoder's detail strings are static; so is this one per frame type.
        fail(pt::ErrorCode::ProtocolError, frame);
        *failed = true;
    }
    return nullptr;
}

void Session::stream_error(Stream& s, pt::ErrorCode code, const char* reason) noexcept {
    const uint32_t id = s.id_;
    StreamHandler* h = s.handler_;
    FERRY_LOG(Debug, "stream %u: %s", id, reason);
    destroy_stream(&s);
    send_reset(id, code, reason);
    if (h != nullptr) {
        h->on_stream_reset(code);
    }
    maybe_finish_drain();
}

bool Session::on_data(uint32_t stream_id, std::span<const std::byte> piece,
                      pt::DataFlags flags) noexcept {
    auto n = static_cast<uint32_t>(piece.size());
    if (flags.fin() || flags.end_message() || n > 0) {
        env_.metrics.frames_in.add();
    }
    if (n > 0 && !conn_recv_.on_received(n)) {
        fail(pt::ErrorCode::FlowControlError, "peer exceeded the connection window");
        return false;
    }
    bool failed = false;
    Stream* s = frame_stream(stream_id, "DATA on a stream that was never opened", &failed);
    if (s == nullptr) {
        // A stream we already reset: the bytes still count against the connection window.
        if (!failed && n > 0) {
            stream_consumed_conn_only(n);
        }
        return !failed;
    }
    if (s->fin_received_) {
        stream_error(*s, pt::ErrorCode::ProtocolError, "DATA after the end of the stream");
        stream_consumed_conn_only(n);  // never counted against the stream
        return true;
    }
    if (n > 0 && !s->recv_.on_received(n)) {
        stream_error(*s, pt::ErrorCode::FlowControlError, "DATA beyond the stream window");
        stream_consumed_conn_only(n);
        return true;
    }
    // From here on the bytes count against the stream: destroying it returns their credit.
    if (messages_ && ours(stream_id) && !s->accepted_) {
        stream_error(*s, pt::ErrorCode::ProtocolError, "DATA before the OPEN_ACK");
        return true;
    }
    // Byte streams (and every stream of a v1 peer) carry no message flags; message streams
    // keep one kind per message (docs/tunnel-protocol.md §6.3).
    pt::DataFlags deliver{};
    if (messages_ && s->protocol_ == pt::StreamProtocol::Tcp &&
        (flags.end_message() || flags.kind() != pt::MessageKind::Binary)) {
        stream_error(*s, pt::ErrorCode::ProtocolError, "message flags on a byte stream");
        return true;
    }
    if (messages_ && s->protocol_ != pt::StreamProtocol::Tcp) {
        const pt::MessageKind kind = flags.kind();
        if (static_cast<uint8_t>(kind) > static_cast<uint8_t>(pt::MessageKind::Compressed)) {
            stream_error(*s, pt::ErrorCode::ProtocolError, "DATA with a reserved message kind");
            return true;
        }
        // A Close may cut into an open message, which is abandoned (spec §6.3).
        if (s->in_message_ && kind != s->message_kind_ && kind != pt::MessageKind::Close) {
            stream_error(*s, pt::ErrorCode::ProtocolError, "message kind changed mid-message");
            return true;
        }
        if (n > 0 || flags.end_message()) {
            s->in_message_ = !flags.end_message();
            s->message_kind_ = kind;
        }
        if (flags.fin() && s->in_message_) {
            stream_error(*s, pt::ErrorCode::ProtocolError, "FIN in the middle of a message");
            return true;
        }
        deliver = pt::DataFlags::make(false, flags.end_message(), kind);
    }
    if (n > 0 || deliver.end_message()) {
        if (s->handler_ == nullptr) {
            stream_consumed(*s, n);
        } else if (n == 0) {
            s->handler_->on_stream_data(buf::Chunk(), deliver);  // an empty message
        } else {
            // Zero copy: the payload stays where the kernel put it; the handler gets a slice.
            auto offset = static_cast<uint32_t>(piece.data() - reading_->data());
            s->handler_->on_stream_data(reading_->share(offset, n), deliver);
        }
    }
    if (flags.fin()) {
        auto it = streams_.find(stream_id);  // the handler may have reset the stream
        if (it != streams_.end()) {
            s = it->second;
            s->fin_received_ = true;
            if (s->handler_ != nullptr) {
                s->handler_->on_stream_fin();
            } else {
                stream_maybe_done(*s);
            }
        }
    }
    return state_ != State::Closed;
}

bool Session::on_open_ack(uint32_t stream_id, const pt::MetadataView& metadata) noexcept {
    env_.metrics.frames_in.add();
    if (!messages_) {
        fail(pt::ErrorCode::ProtocolError, "OPEN_ACK from a peer that did not announce v1.1");
        return false;
    }
    bool failed = false;
    Stream* s = frame_stream(stream_id, "OPEN_ACK on a stream that was never opened", &failed);
    if (s == nullptr) {
        return !failed;
    }
    if (!ours(stream_id) || s->accepted_) {
        stream_error(*s, pt::ErrorCode::ProtocolError,
                     ours(stream_id) ? "second OPEN_ACK" : "OPEN_ACK on a stream the peer opened");
        return true;
    }
    s->accepted_ = true;
    if (s->handler_ != nullptr) {
        s->handler_->on_stream_accepted(metadata);
    }
    return state_ != State::Closed;
}

bool Session::on_trailers(uint32_t stream_id, const pt::MetadataView& metadata) noexcept {
    env_.metrics.frames_in.add();
    if (!messages_) {
        fail(pt::ErrorCode::ProtocolError, "TRAILERS from a peer that did not announce v1.1");
        return false;
    }
    bool failed = false;
    Stream* s = frame_stream(stream_id, "TRAILERS on a stream that was never opened", &failed);
    if (s == nullptr) {
        return !failed;
    }
    if (s->fin_received_ || s->in_message_ || (ours(stream_id) && !s->accepted_)) {
        stream_error(*s, pt::ErrorCode::ProtocolError,
                     s->fin_received_ ? "TRAILERS after the end of the stream"
                     : s->in_message_ ? "TRAILERS in the middle of a message"
                                      : "TRAILERS before the OPEN_ACK");
        return true;
    }
    s->fin_received_ = true;
    if (s->handler_ != nullptr) {
        s->handler_->on_stream_trailers(metadata);
    } else {
        stream_maybe_done(*s);
    }
    return state_ != State::Closed;
}

bool Session::stream_accept(Stream& s, std::span<const pt::MetadataEntry> metadata) noexcept {
    if (s.accepted_ || ours(s.id_)) {
        return true;
    }
    if (!messages_) {
        s.accepted_ = true;
        return true;  // a v1 peer takes the stream as accepted unless it is reset
    }
    const size_t need = pt::open_ack_frame_size(metadata);
    if (need == 0 || need - pt::kFrameHeaderSize > peer_max_frame_) {
        return false;
    }
    if (!write_open_ack(s.id_, metadata)) {
        if (!metadata.empty()) {
            return false;
        }
        // Both pools are dry: the (empty) OPEN_ACK is owed, and the stream's data waits for it.
        s.accept_owed_ = true;
        owe_accept_ = true;
        ctx_.buffer_waits.park(this);
    }
    s.accepted_ = true;
    mark_dirty();
    return true;
}

bool Session::write_open_ack(uint32_t stream_id,
                             std::span<const pt::MetadataEntry> metadata) noexcept {
    std::span<std::byte> out = control_space(pt::open_ack_frame_size(metadata));
    if (out.empty()) {
        return false;
    }
    control_commit(pt::encode_open_ack(out, stream_id, metadata));
    return true;
}

bool Session::stream_trailers(Stream& s, std::span<const pt::MetadataEntry> trailers) noexcept {
    if (s.fin_queued_) {
        return true;
    }
    if (!s.accepted_) {
        (void)stream_accept(s, {});
    }
    if (messages_) {
        const size_t need = pt::trailers_frame_size(trailers);
        if (need == 0 || need - pt::kFrameHeaderSize > peer_max_frame_) {
            return false;
        }
        buf::Chunk frame = carve(need);
        if (frame.empty()) {
            return false;
        }
        FERRY_CHECK(pt::encode_trailers(frame.span(), s.id_, trailers) == need);
        s.trailers_ = std::move(frame);
    }
    // A v1 peer cannot take trailers: the stream ends with a plain FIN.
    s.finish();
    return true;
}

bool Session::on_window(uint32_t stream_id, uint32_t increment) noexcept {
    env_.metrics.frames_in.add();
    if (stream_id == 0) {
        if (!conn_send_.grant(increment)) {
            fail(pt::ErrorCode::FlowControlError, "connection window overflow");
            return false;
        }
        mark_dirty();
        return true;
    }
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) {
        return true;  // a stream that already ended
    }
    Stream* s = it->second;
    if (!s->send_.grant(increment)) {
        StreamHandler* h = s->handler_;
        destroy_stream(s);
        send_reset(stream_id, pt::ErrorCode::FlowControlError);
        if (h != nullptr) {
            h->on_stream_reset(pt::ErrorCode::FlowControlError);
        }
        return true;
    }
    if (!s->in_ready_ && stream_sendable(*s)) {
        ready_push(s);
        mark_dirty();
    }
    return true;
}

bool Session::on_reset(uint32_t stream_id, pt::ErrorCode code, std::string_view reason) noexcept {
    env_.metrics.frames_in.add();
    env_.metrics.resets_received.add();
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) {
        return true;
    }
    if (!reason.empty()) {
        // Peer text: logged escaped and bounded, never interpreted.
        FERRY_LOG(Debug, "stream %u reset by the peer: %s: %s", stream_id,
                  pt::error_code_name(code), escaped(reason));
    }
    Stream* s = it->second;
    StreamHandler* h = s->handler_;
    destroy_stream(s);
    if (h != nullptr) {
        h->on_stream_reset(code);
    }
    maybe_finish_drain();
    return state_ != State::Closed;
}

bool Session::on_ping(bool ack, uint64_t opaque) noexcept {
    env_.metrics.frames_in.add();
    if (ack) {
        if (opaque == kDrainPingOpaque) {
            // Every OPEN the peer sent before our drain announcement has arrived by now.
            finish_drain_announcement();
        } else if (opaque == ping_outstanding_ns_ && ping_outstanding_ns_ != 0) {
            uint64_t rtt = base::mono_ns() - opaque;
            env_.metrics.rtt_us.set(static_cast<int64_t>(rtt / 1000));
            if (peer_counters_ != nullptr) {
                peer_counters_->rtt_us.set(static_cast<int64_t>(rtt / 1000));
            }
            ping_outstanding_ns_ = 0;
        }
        return state_ != State::Closed;
    }
    if (!write_ping(true, opaque)) {
        owed_ping_ack_ = opaque;  // only the newest PING is waited for
        ctx_.buffer_waits.park(this);
        return true;
    }
    mark_dirty();
    return true;
}

bool Session::on_goaway(uint32_t last_stream_id, pt::ErrorCode code,
                        std::string_view debug) noexcept {
    env_.metrics.frames_in.add();
    if (last_stream_id > peer_goaway_last_) {
        fail(pt::ErrorCode::ProtocolError, "GOAWAY raised its last stream id");
        return false;
    }
    peer_goaway_last_ = last_stream_id;
    // Peer text: escaped and bounded before it reaches the log.
    const std::string text = escaped(debug);
    if (code != pt::ErrorCode::NoError) {
        FERRY_LOG(Warn, "tunnel %s: peer sent GOAWAY %s: %s", peer_name_, pt::error_code_name(code),
                  text);
    } else if (state_ == State::Open) {
        FERRY_LOG(Info, "tunnel %s: peer is draining (%s)", peer_name_, text);
    }
    if (state_ == State::Open || state_ == State::Hello) {
        state_ = State::Draining;
        owner_->on_session_draining(*this);
    }
    // Streams we opened above the peer's last id were never processed there: they end as
    // refused, which tells their handlers a retry elsewhere is safe (RFC 9113 §6.8).
    std::vector<Stream*> refused;
    for (const auto& [id, stream] : streams_) {
        if (ours(id) && id > last_stream_id) {
            refused.push_back(stream);
        }
    }
    for (Stream* stream : refused) {
        StreamHandler* h = stream->handler_;
        destroy_stream(stream);
        if (h != nullptr) {
            h->on_stream_reset(pt::ErrorCode::RefusedStream);
        }
    }
    maybe_finish_drain();
    return state_ != State::Closed;
}

bool SessionFrameSink::on_hello(const pt::Hello& hello) noexcept {
    return session->on_hello(hello);
}
bool SessionFrameSink::on_open(uint32_t stream_id, const pt::Open& open) noexcept {
    return session->on_open(stream_id, open);
}
bool SessionFrameSink::on_data(uint32_t stream_id, std::span<const std::byte> piece,
                               pt::DataFlags flags) noexcept {
    return session->on_data(stream_id, piece, flags);
}
bool SessionFrameSink::on_window(uint32_t stream_id, uint32_t increment) noexcept {
    return session->on_window(stream_id, increment);
}
bool SessionFrameSink::on_reset(uint32_t stream_id, pt::ErrorCode code,
                                std::string_view reason) noexcept {
    return session->on_reset(stream_id, code, reason);
}
bool SessionFrameSink::on_ping(bool ack, uint64_t opaque) noexcept {
    return session->on_ping(ack, opaque);
}
bool SessionFrameSink::on_goaway(uint32_t last_stream_id, pt::ErrorCode code,
                                 std::string_view debug) noexcept {
    return session->on_goaway(last_stream_id, code, debug);
}
bool SessionFrameSink::on_open_ack(uint32_t stream_id, const pt::MetadataView& metadata) noexcept {
    return session->on_open_ack(stream_id, metadata);
}
bool SessionFrameSink::on_trailers(uint32_t stream_id, const pt::MetadataView& metadata) noexcept {
    return session->on_trailers(stream_id, metadata);
}

}  // namespace ferry::tunnel
