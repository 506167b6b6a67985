#include "ferry/tunnel/session.h"

#include <cerrno>
#include <cstring>

#include "ferry/base/check.h"
#include "ferry/base/clock.h"
#include "ferry/base/log.h"
#include "ferry/proto/tunnel/frame_encoder.h"

namespace ferry::tunnel {

namespace pt = proto::tunnel;

// Adapts Link callbacks to the Session without making Session itself virtual.
class Session::LinkEvents final : public LinkSink {
  public:
    explicit LinkEvents(Session* s) noexcept : s_(s) {}
    void on_link_read(buf::Chunk&& bytes) noexcept override { s_->link_read(std::move(bytes)); }
    void on_link_written() noexcept override { s_->link_written(); }
    void on_link_down(const char* reason, int err) noexcept override { s_->link_down(reason, err); }
    void on_link_quiescent() noexcept override { s_->link_quiescent(); }
    void on_link_established() noexcept override { s_->link_established(); }
    void on_link_rotation_due(const char* why) noexcept override {
        s_->owner_->on_session_rotation_due(*s_, why);
    }

  private:
    Session* s_;
};

// ---- Stream -----------------------------------------------------------------------------------

void Stream::write(buf::Chunk&& data) noexcept {
    if (data.size() == 0 || fin_queued_) {
        return;
    }
    out_.push(session_->ctx_.nodes, std::move(data));
    session_->stream_has_output(*this);
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
    if (out_.bytes() >= session_->ctx_.tuning.stream_window) {
        want_writable_ = true;
        return true;
    }
    return false;
}

// ---- Session ----------------------------------------------------------------------------------

Session::Session(Context& ctx, SessionOwner* owner, std::unique_ptr<Link> link, Role role,
                 std::string_view node_name) noexcept
    : ctx_(ctx),
      owner_(owner),
      link_(std::move(link)),
      link_events_(std::make_unique<LinkEvents>(this)),
      role_(role),
      node_name_(node_name),
      decoder_(sink_, ctx.tuning.max_frame_size),
      next_stream_id_(role == Role::Initiator ? 1 : 2),
      conn_recv_(ctx.tuning.connection_window) {
    owed_resets_.reserve(ctx.tuning.max_streams);
}

Session::~Session() {
    ctx_.unpark_starved(this);
    batch_.owned.clear(ctx_.nodes);
    ctrl_full_.clear(ctx_.nodes);
}

void Session::start() noexcept {
    last_ping_ns_ = ctx_.now_ns;
    link_->start(link_events_.get());
    if (link_->established()) {
        send_hello();
    }
}

void Session::link_established() noexcept {
    FERRY_LOG(Debug, "tunnel link established over %s", link_->kind());
    send_hello();
}

void Session::send_hello() noexcept {
    std::span<std::byte> out = control_space(pt::kPrefaceSize);
    control_commit(pt::encode_preface(out));
    pt::HelloSettings hello;
    hello.max_frame_size = ctx_.tuning.max_frame_size;
    hello.initial_stream_window = ctx_.tuning.stream_window;
    hello.connection_window = ctx_.tuning.connection_window;
    hello.max_streams = ctx_.tuning.max_streams;
    hello.capabilities = link_->capabilities();
    hello.node_name = node_name_;
    out = control_space(pt::hello_frame_size(hello));
    size_t n = pt::encode_hello(out, hello);
    FERRY_CHECK(n > 0);
    control_commit(n);
    mark_dirty();
}

Stream* Session::open_stream(pt::StreamProtocol protocol, std::string_view routing_key,
                             StreamHandler* handler) noexcept {
    if (state_ != State::Open || streams_.size() >= peer_max_streams_ ||
        next_stream_id_ > 0x7fff'fffeU) {
        return nullptr;
    }
    uint32_t id = next_stream_id_;
    next_stream_id_ += 2;
    size_t need = pt::open_frame_size(protocol, routing_key, {});
    std::span<std::byte> out = control_space(need);
    if (out.empty()) {
        return nullptr;
    }
    size_t n = pt::encode_open(out, id, protocol, routing_key, {});
    FERRY_CHECK(n == need);
    control_commit(n);
    Stream* s =
        stream_pool_.create(this, id, peer_stream_window_, ctx_.tuning.stream_window, handler);
    streams_.emplace(id, s);
    ctx_.metrics.streams_opened.add();
    ctx_.metrics.streams_active.add(1);
    mark_dirty();
    return s;
}

void Session::drain() noexcept {
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    if (state_ != State::Draining) {
        state_ = State::Draining;
        send_drain_goaway();
    }
    maybe_finish_drain();
}

void Session::maybe_finish_drain() noexcept {
    if (state_ == State::Draining && streams_.empty()) {
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
    FERRY_LOG(Info, "tunnel to %s: closing: %s", peer_name_.empty() ? "?" : peer_name_, reason);
    state_ = State::Closed;
    reset_all_streams(pt::ErrorCode::Cancel);
    if (!link_closed_) {
        link_closed_ = true;
        link_->close();
    }
}

void Session::tick(uint64_t now_ns) noexcept {
    if (state_ != State::Open && state_ != State::Draining) {
        return;
    }
    link_->tick(now_ns);
    if (ping_outstanding_ns_ != 0 && now_ns - ping_outstanding_ns_ > ctx_.tuning.ping_timeout_ns) {
        fail(pt::ErrorCode::Timeout, "no PING acknowledgement within the ping timeout");
        return;
    }
    if (ping_outstanding_ns_ == 0 && now_ns - last_ping_ns_ >= ctx_.tuning.ping_interval_ns) {
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
              peer_name_, link_->kind(), static_cast<int>(state_), streams_.size(),
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
    ctx_.metrics.frames_out.add();
}

void Session::send_credit(uint32_t stream_id, pt::RecvWindow& window, uint32_t increment) noexcept {
    std::span<std::byte> out = control_space(pt::kWindowFrameSize);
    if (out.empty()) {
        window.unsend(increment);
        owe_credit_ = true;
        ctx_.park_starved(this);
        return;
    }
    control_commit(pt::encode_window(out, stream_id, increment));
    mark_dirty();
}

bool Session::write_reset(uint32_t stream_id, pt::ErrorCode code) noexcept {
    std::span<std::byte> out = control_space(pt::kResetFrameSize);
    if (out.empty()) {
        return false;
    }
    control_commit(pt::encode_reset(out, stream_id, code));
    ctx_.metrics.resets_sent.add();
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

bool Session::write_goaway(pt::ErrorCode code, std::string_view debug) noexcept {
    std::span<std::byte> out = control_space(pt::goaway_frame_size(debug));
    if (out.empty()) {
        return false;
    }
    control_commit(pt::encode_goaway(out, last_peer_stream_id_, code, debug));
    return true;
}

void Session::send_reset(uint32_t stream_id, pt::ErrorCode code) noexcept {
    if (write_reset(stream_id, code)) {
        mark_dirty();
        return;
    }
    if (owed_resets_.size() == owed_resets_.capacity()) {
        fail(pt::ErrorCode::InternalError, "out of buffers for control frames");
        return;
    }
    owed_resets_.emplace_back(stream_id, code);
    ctx_.park_starved(this);
}

void Session::send_drain_goaway() noexcept {
    owe_goaway_ = !write_goaway(pt::ErrorCode::NoError, "drain");
    if (owe_goaway_) {
        ctx_.park_starved(this);
        return;
    }
    mark_dirty();
}

bool Session::owes_control() const noexcept {
    return owe_credit_ || owe_goaway_ || owed_ping_ack_.has_value() || !owed_resets_.empty();
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
           write_reset(owed_resets_[paid].first, owed_resets_[paid].second)) {
        ++paid;
    }
    owed_resets_.erase(owed_resets_.begin(), owed_resets_.begin() + static_cast<ptrdiff_t>(paid));
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
        ctx_.park_starved(this);
    }
}

void Session::rearm() noexcept {
    if (owes_control()) {
        flush();
    }
}

void Session::mark_dirty() noexcept {
    if (!in_dirty_list && !link_closed_) {
        in_dirty_list = true;
        // The shard's dirty list, flushed after the CQE batch so many frames share one write.
        next_dirty = ctx_.dirty_head;
        ctx_.dirty_head = this;
    }
}

bool Session::stream_sendable(const Stream& s) const noexcept {
    if (!s.out_.empty()) {
        return s.send_.available() > 0;
    }
    return s.fin_queued_ && !s.fin_sent_;
}

void Session::stream_has_output(Stream& s) noexcept {
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
    WriteBatch& b = batch_;
    uint64_t room = ctx_.tuning.batch_bytes > b.bytes ? ctx_.tuning.batch_bytes - b.bytes : 0;
    uint64_t budget =
        std::min<uint64_t>({s.send_.available(), conn_send_.available(), peer_max_frame_, room});
    if (budget == 0 && !s.out_.empty()) {
        return false;
    }
    std::byte* header = b.headers[b.headers_used++];
    b.add(header, pt::kFrameHeaderSize);
    uint32_t len = 0;
    // A frame gathers queued chunks up to the budget: small writes share one header.
    while (budget > 0 && !s.out_.empty() && !b.full(1)) {
        buf::Chunk& front = s.out_.front();
        uint32_t take = front.size();
        buf::Chunk piece;
        if (take <= budget) {
            piece = s.out_.pop(ctx_.nodes);
        } else {
            take = static_cast<uint32_t>(budget);
            piece = front.share(0, take);
            s.out_.consume(ctx_.nodes, take);
        }
        b.add(piece.data(), take);
        b.owned.push(ctx_.nodes, std::move(piece));
        budget -= take;
        len += take;
    }
    bool fin = s.fin_queued_ && s.out_.empty();
    FERRY_DCHECK(len > 0 || fin);
    size_t written =
        pt::encode_data_header(std::span<std::byte>(header, pt::kFrameHeaderSize), s.id_, len, fin);
    FERRY_DCHECK(written == pt::kFrameHeaderSize);
    (void)written;
    s.send_.consume(len);
    conn_send_.consume(len);
    ctx_.metrics.frames_out.add();
    if (fin) {
        s.fin_sent_ = true;
    }
    if (s.want_writable_ && s.out_.bytes() <= ctx_.tuning.stream_window / 2 &&
        s.handler_ != nullptr) {
        s.want_writable_ = false;
        s.handler_->on_stream_writable();
    }
    return true;
}

void Session::flush() noexcept {
    if (writing_ || link_closed_ || !link_->established()) {
        return;
    }
    if (owes_control()) {
        pay_owed_control();
    }
    WriteBatch& b = batch_;
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
        while (ready_head_ != nullptr && !b.full(3) && b.bytes < ctx_.tuning.batch_bytes &&
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
        if (close_after_flush_ && !link_closed_) {
            link_closed_ = true;
            link_->close();
        }
        return;
    }
    writing_ = true;
    link_->write(&b);
}

// ---- Link events ------------------------------------------------------------------------------

void Session::link_written() noexcept {
    writing_ = false;
    batch_.owned.clear(ctx_.nodes);
    if (!link_closed_) {
        flush();
    }
}

void Session::link_read(buf::Chunk&& bytes) noexcept {
    if (state_ == State::Closed) {
        return;
    }
    reading_ = &bytes;
    pt::DecodeResult r = decoder_.feed(std::span<const std::byte>(bytes.data(), bytes.size()));
    reading_ = nullptr;
    if (r.status == pt::DecodeStatus::Error) {
        ctx_.metrics.tunnel_protocol_errors.add();
        fail(r.code, r.detail);
    }
}

void Session::link_down(const char* reason, int err) noexcept {
    if (state_ == State::Closed) {
        return;
    }
    bool expected = state_ == State::Closing || state_ == State::Draining;
    if (state_ == State::Hello) {
        // Before HELLO the link has already said why (handshake refusal, connect loss).
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
    reset_all_streams(pt::ErrorCode::Cancel);
    if (!link_closed_) {
        link_closed_ = true;
        link_->close();
    }
}

void Session::link_quiescent() noexcept {
    state_ = State::Closed;
    batch_.owned.clear(ctx_.nodes);
    ctrl_full_.clear(ctx_.nodes);
    ctrl_.reset();
    owner_->on_session_closed(*this);
}

void Session::fail(pt::ErrorCode code, const char* detail) noexcept {
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    FERRY_LOG(Warn, "tunnel %s: protocol error %s: %s; closing the connection",
              peer_name_.empty() ? "?" : peer_name_, pt::error_code_name(code), detail);
    state_ = State::Closing;
    reset_all_streams(code);
    (void)write_goaway(code, detail);  // best effort: the connection closes either way
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
    ctx_.metrics.streams_active.add(-1);
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
    ctx_.metrics.frames_in.add();
    peer_name_ = std::string(hello.settings.node_name);
    peer_capabilities_ = hello.settings.capabilities;
    link_->set_peer_capabilities(peer_capabilities_);
    peer_max_frame_ = hello.settings.max_frame_size;
    peer_stream_window_ = hello.settings.initial_stream_window;
    peer_max_streams_ = hello.settings.max_streams;
    if (!conn_send_.grant(hello.settings.connection_window)) {
        fail(pt::ErrorCode::FlowControlError, "HELLO connection window too large");
        return false;
    }
    if (state_ == State::Hello) {
        state_ = State::Open;
        FERRY_LOG(Info, "tunnel up: peer '%s' over %s (max frame %u, stream window %u)", peer_name_,
                  link_->kind(), peer_max_frame_, peer_stream_window_);
        owner_->on_session_ready(*this);
    }
    return state_ != State::Closed;
}

bool Session::on_open(uint32_t stream_id, const pt::Open& open) noexcept {
    ctx_.metrics.frames_in.add();
    bool peer_parity = (stream_id & 1U) == (role_ == Role::Initiator ? 0U : 1U);
    if (!peer_parity || stream_id <= last_peer_stream_id_) {
        fail(pt::ErrorCode::ProtocolError, "OPEN with an invalid or reused stream id");
        return false;
    }
    last_peer_stream_id_ = stream_id;
    if (state_ != State::Open) {
        send_reset(stream_id, pt::ErrorCode::RefusedStream);
        return true;
    }
    if (streams_.size() >= ctx_.tuning.max_streams) {
        ctx_.metrics.streams_refused.add();
        send_reset(stream_id, pt::ErrorCode::RefusedStream);
        return true;
    }
    Stream* s = stream_pool_.create(this, stream_id, peer_stream_window_, ctx_.tuning.stream_window,
                                    nullptr);
    streams_.emplace(stream_id, s);
    ctx_.metrics.streams_opened.add();
    ctx_.metrics.streams_active.add(1);
    StreamHandler* h = owner_->on_stream_open(*this, *s, open);
    if (h == nullptr) {
        ctx_.metrics.streams_refused.add();
        destroy_stream(s);
        send_reset(stream_id, pt::ErrorCode::RefusedStream);
        return true;
    }
    s->handler_ = h;
    return state_ != State::Closed;
}

bool Session::on_data(uint32_t stream_id, std::span<const std::byte> piece, bool fin) noexcept {
    auto n = static_cast<uint32_t>(piece.size());
    if (fin || n > 0) {
        ctx_.metrics.frames_in.add();
    }
    if (n > 0 && !conn_recv_.on_received(n)) {
        fail(pt::ErrorCode::FlowControlError, "peer exceeded the connection window");
        return false;
    }
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) {
        bool ours = (stream_id & 1U) == (role_ == Role::Initiator ? 1U : 0U);
        bool seen = ours ? stream_id < next_stream_id_ : stream_id <= last_peer_stream_id_;
        if (!seen) {
            fail(pt::ErrorCode::ProtocolError, "DATA on a stream that was never opened");
            return false;
        }
        // A stream we already reset: the bytes still count against the connection window.
        if (n > 0) {
            stream_consumed_conn_only(n);
        }
        return true;
    }
    Stream* s = it->second;
    if (s->fin_received_) {
        uint32_t id = s->id_;
        StreamHandler* h = s->handler_;
        destroy_stream(s);
        send_reset(id, pt::ErrorCode::ProtocolError);
        if (h != nullptr) {
            h->on_stream_reset(pt::ErrorCode::ProtocolError);
        }
        return true;
    }
    if (n > 0 && !s->recv_.on_received(n)) {
        uint32_t id = s->id_;
        StreamHandler* h = s->handler_;
        destroy_stream(s);
        send_reset(id, pt::ErrorCode::FlowControlError);
        stream_consumed_conn_only(n);
        if (h != nullptr) {
            h->on_stream_reset(pt::ErrorCode::FlowControlError);
        }
        return true;
    }
    if (n > 0) {
        if (s->handler_ == nullptr) {
            stream_consumed(*s, n);
        } else {
            // Zero copy: the payload stays where the kernel put it; the handler gets a slice.
            auto offset = static_cast<uint32_t>(piece.data() - reading_->data());
            s->handler_->on_stream_data(reading_->share(offset, n));
        }
    }
    if (fin) {
        it = streams_.find(stream_id);  // the handler may have reset the stream
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

bool Session::on_window(uint32_t stream_id, uint32_t increment) noexcept {
    ctx_.metrics.frames_in.add();
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

bool Session::on_reset(uint32_t stream_id, pt::ErrorCode code) noexcept {
    ctx_.metrics.frames_in.add();
    ctx_.metrics.resets_received.add();
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) {
        return true;
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
    ctx_.metrics.frames_in.add();
    if (ack) {
        if (opaque == ping_outstanding_ns_ && ping_outstanding_ns_ != 0) {
            uint64_t rtt = base::mono_ns() - opaque;
            ctx_.metrics.rtt_us.set(static_cast<int64_t>(rtt / 1000));
            ping_outstanding_ns_ = 0;
        }
        return true;
    }
    if (!write_ping(true, opaque)) {
        owed_ping_ack_ = opaque;  // only the newest PING is waited for
        ctx_.park_starved(this);
        return true;
    }
    mark_dirty();
    return true;
}

bool Session::on_goaway(uint32_t, pt::ErrorCode code, std::string_view debug) noexcept {
    ctx_.metrics.frames_in.add();
    if (code != pt::ErrorCode::NoError) {
        FERRY_LOG(Warn, "tunnel %s: peer sent GOAWAY %s: %s", peer_name_, pt::error_code_name(code),
                  debug);
    } else {
        FERRY_LOG(Info, "tunnel %s: peer is draining (%s)", peer_name_, debug);
    }
    if (state_ == State::Open || state_ == State::Hello) {
        state_ = State::Draining;
        owner_->on_session_draining(*this);
    }
    maybe_finish_drain();
    return true;
}

bool SessionFrameSink::on_hello(const pt::Hello& hello) noexcept {
    return session->on_hello(hello);
}
bool SessionFrameSink::on_open(uint32_t stream_id, const pt::Open& open) noexcept {
    return session->on_open(stream_id, open);
}
bool SessionFrameSink::on_data(uint32_t stream_id, std::span<const std::byte> piece,
                               bool fin) noexcept {
    return session->on_data(stream_id, piece, fin);
}
bool SessionFrameSink::on_window(uint32_t stream_id, uint32_t increment) noexcept {
    return session->on_window(stream_id, increment);
}
bool SessionFrameSink::on_reset(uint32_t stream_id, pt::ErrorCode code) noexcept {
    return session->on_reset(stream_id, code);
}
bool SessionFrameSink::on_ping(bool ack, uint64_t opaque) noexcept {
    return session->on_ping(ack, opaque);
}
bool SessionFrameSink::on_goaway(uint32_t last_stream_id, pt::ErrorCode code,
                                 std::string_view debug) noexcept {
    return session->on_goaway(last_stream_id, code, debug);
}

}  // namespace ferry::tunnel
