#include "ferry/role/connector.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ferry/base/log.h"

namespace ferry::role {

namespace pt = proto::tunnel;

Connector::Connector(TunnelEndpoint& endpoint, ConnectorEvents* events, io::SocketAddress peer,
                     uint64_t seed, uint64_t handshake_timeout_ns) noexcept
    : endpoint_(endpoint),
      events_(events),
      peer_(peer),
      peer_text_(peer.to_string()),
      handshake_timeout_ns_(handshake_timeout_ns),
      rng_(seed | 1) {}

Connector::~Connector() {
    for (Attempt& a : sessions_) {
        a.session->abort("shutting down");
    }
    if (connect_fd_ >= 0) {
        ::close(connect_fd_);
    }
}

void Connector::start() noexcept { connect(); }

void Connector::connect() noexcept {
    if (connecting_ || draining_) {
        return;
    }
    reconnect_pending_ = false;
    connect_fd_ = io::new_tcp_socket(peer_.family());
    if (connect_fd_ < 0) {
        FERRY_LOG(Error, "tunnel socket: %s", strerror(errno));
        schedule_reconnect();
        return;
    }
    connecting_ = true;
    loop::Context& ctx = endpoint_.ctx();
    io::prep_connect_with_timeout(ctx.ring, &connect_op_, &timeout_op_, connect_fd_, peer_.get(),
                                  peer_.length, ctx.socket_tuning.connect_timeout_ns,
                                  &connect_timeout_);
    connect_ops_ += 2;
}

void Connector::on_connect(int32_t res, uint32_t) noexcept {
    --connect_ops_;
    connecting_ = false;
    int fd = connect_fd_;
    connect_fd_ = -1;
    Metrics& m = endpoint_.role_metrics();
    if (res < 0 || draining_) {
        ::close(fd);
        if (!draining_) {
            m.tunnel_connect_failures.add();
            int err = res == -ECANCELED ? ETIMEDOUT : -res;
            // Rate-limited, so a long outage stays readable.
            FERRY_LOG_LIMITED(failure_log_, endpoint_.ctx().now_ns, Warn,
                              "tunnel connect to %s failed: %s (attempt %u)", peer_text_,
                              strerror(err), failures_ + 1);
            schedule_reconnect();
        }
        return;
    }
    m.tunnel_connects.add();
    Attempt a;
    a.started_ns = endpoint_.ctx().now_ns;
    a.session = endpoint_.start_session(fd, this, tunnel::Session::Role::Initiator);
    a.session->set_peer_counters(peer_counters_);
    sessions_.push_back(std::move(a));
}

void Connector::schedule_reconnect() noexcept {
    // Exponential backoff from 100 ms to 5 s with +-25% jitter, so a fleet of shards and nodes
    // does not reconnect in lockstep after a terminator restart.
    uint64_t base_ms = std::min<uint64_t>(5000, 100ULL << std::min<uint32_t>(failures_, 6));
    ++failures_;
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    uint64_t jitter = rng_ % (base_ms / 2 + 1);
    uint64_t delay_ms = base_ms - base_ms / 4 + jitter;
    reconnect_at_ns_ = endpoint_.ctx().now_ns + delay_ms * 1'000'000;
    reconnect_pending_ = true;
}

tunnel::Session* Connector::usable() const noexcept {
    return active_ != nullptr && active_->usable() ? active_ : nullptr;
}

void Connector::on_session_ready(tunnel::Session& session) noexcept {
    failures_ = 0;
    if (active_ != nullptr && active_ != &session) {
        // A replacement came up while the old connection drains: move new streams over.
        active_->drain();
    }
    active_ = &session;
    events_->on_connector_changed(*this);
}

tunnel::OpenDecision Connector::on_stream_open(tunnel::Session&, tunnel::Stream&,
                                               const pt::Open&) noexcept {
    return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream,
                                        "the initiator serves no streams opened by a terminator");
}

void Connector::on_session_draining(tunnel::Session& session) noexcept {
    if (&session == active_) {
        active_ = nullptr;
        events_->on_connector_changed(*this);
        connect();
    }
}

void Connector::on_session_closed(tunnel::Session& session) noexcept {
    Metrics& m = endpoint_.role_metrics();
    if (&session == active_) {
        active_ = nullptr;
    }
    auto it = std::find_if(sessions_.begin(), sessions_.end(),
                           [&](const Attempt& a) { return a.session.get() == &session; });
    if (session.hello_exchanged()) {
        m.tunnel_disconnects.add();
    } else {
        // The terminator took the TCP connection but the handshake or HELLO did not complete
        // (refused, closed, or silent): a failed attempt, retried with backoff.
        m.tunnel_connect_failures.add();
        FERRY_LOG_LIMITED(failure_log_, endpoint_.ctx().now_ns, Warn,
                          "tunnel to %s failed before HELLO: %s (attempt %u)", peer_text_,
                          session.close_reason(), failures_ + 1);
    }
    if (it != sessions_.end()) {
        endpoint_.retire(std::move(it->session));
        sessions_.erase(it);
    }
    events_->on_connector_changed(*this);
    if (active_ == nullptr && !connecting_ && !draining_) {
        schedule_reconnect();
    }
}

void Connector::on_session_rotation_due(tunnel::Session& session, const char* why) noexcept {
    if (&session != active_ || draining_) {
        return;
    }
    // Make-before-break: the new connection becomes active when its HELLO arrives
    // (on_session_ready), and only then does this one drain.
    FERRY_LOG(Info, "tunnel rotation: %s; opening a new connection to %s", why, peer_text_);
    connect();
}

void Connector::tick(uint64_t now_ns) noexcept {
    for (Attempt& a : sessions_) {
        if (!a.timed_out && !a.session->hello_exchanged() &&
            now_ns - a.started_ns > handshake_timeout_ns_) {
            // A peer that accepts TCP and never answers TLS must not hold this peer for ever.
            a.timed_out = true;
            endpoint_.role_metrics().handshake_timeouts.add();
            a.session->abort("TLS handshake and HELLO not done within --handshake-timeout");
        }
        a.session->tick(now_ns);
    }
    if (reconnect_pending_ && now_ns >= reconnect_at_ns_) {
        connect();
    }
}

void Connector::drain() noexcept {
    draining_ = true;
    reconnect_pending_ = false;
    if (connecting_) {
        io_uring_prep_cancel(endpoint_.ctx().ring.sqe(nullptr), &connect_op_, 0);
    }
    for (Attempt& a : sessions_) {
        a.session->drain();
    }
}

void Connector::abort_all(const char* reason) noexcept {
    draining_ = true;
    reconnect_pending_ = false;
    for (Attempt& a : sessions_) {
        a.session->abort(reason);
    }
}

bool Connector::idle() const noexcept {
    return draining_ && sessions_.empty() && connect_ops_ == 0;
}

void Connector::dump() const noexcept {
    FERRY_LOG(Info, "peer %s: %zu tunnel connection(s)%s", peer_text_, sessions_.size(),
              usable() != nullptr ? "" : ", none usable");
    for (const Attempt& a : sessions_) {
        a.session->dump();
    }
}

}  // namespace ferry::role
