#include "ferry/role/initiator.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ferry/base/log.h"

namespace ferry::role {

namespace pt = proto::tunnel;

Initiator::Initiator(tunnel::Context& ctx, InitiatorConfig config) noexcept
    : TunnelEndpoint(ctx, config.security, "initiator"),
      config_(std::move(config)),
      rng_(config_.seed | 1) {}

Initiator::~Initiator() {
    for (const PendingClient& p : pending_) {
        ::close(p.fd);
    }
    if (connect_fd_ >= 0) {
        ::close(connect_fd_);
    }
}

bool Initiator::start() noexcept {
    if (!init_tls()) {
        return false;
    }
    if (absl::Status st = acceptor_.listen(config_.listen); !st.ok()) {
        FERRY_LOG(Error, "initiator: %s", st.message());
        return false;
    }
    acceptor_.start();
    connect_tunnel();
    return true;
}

void Initiator::connect_tunnel() noexcept {
    if (connecting_ || draining_) {
        return;
    }
    reconnect_pending_ = false;
    connect_fd_ = io::new_tcp_socket(config_.peer.family());
    if (connect_fd_ < 0) {
        FERRY_LOG(Error, "tunnel socket: %s", strerror(errno));
        schedule_reconnect();
        return;
    }
    connecting_ = true;
    io::prep_connect_with_timeout(ctx_.ring, &connect_op_, &timeout_op_, connect_fd_,
                                  config_.peer.get(), config_.peer.length,
                                  ctx_.tuning.connect_timeout_ns, &connect_timeout_);
    connect_ops_ += 2;
}

void Initiator::on_connect(int32_t res, uint32_t) noexcept {
    --connect_ops_;
    connecting_ = false;
    int fd = connect_fd_;
    connect_fd_ = -1;
    if (res < 0 || draining_) {
        ::close(fd);
        if (!draining_) {
            ctx_.metrics.tunnel_connect_failures.add();
            int err = res == -ECANCELED ? ETIMEDOUT : -res;
            // Log the first failure and then every tenth, so a long outage stays readable.
            if (failures_ % 10 == 0) {
                FERRY_LOG(Warn, "tunnel connect to %s failed: %s (attempt %u)",
                          config_.peer.to_string(), strerror(err), failures_ + 1);
            }
            schedule_reconnect();
        }
        return;
    }
    ctx_.metrics.tunnel_connects.add();
    (void)add_session(fd, tunnel::Session::Role::Initiator, config_.node_name);
}

void Initiator::schedule_reconnect() noexcept {
    // Exponential backoff from 100 ms to 5 s with +-25% jitter, so a fleet of shards and nodes
    // does not reconnect in lockstep after a terminator restart.
    uint64_t base_ms = std::min<uint64_t>(5000, 100ULL << std::min<uint32_t>(failures_, 6));
    ++failures_;
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    uint64_t jitter = rng_ % (base_ms / 2 + 1);
    uint64_t delay_ms = base_ms - base_ms / 4 + jitter;
    reconnect_at_ns_ = ctx_.now_ns + delay_ms * 1'000'000;
    reconnect_pending_ = true;
}

void Initiator::on_accepted(int fd) noexcept {
    if (config_.max_connections != 0 && legs_.live() + pending_.size() >= config_.max_connections) {
        ctx_.metrics.connections_rejected.add();
        FERRY_LOG(Debug, "client rejected: --max-connections reached");
        legs_.create(ctx_, &legs_)->reject(fd);
        return;
    }
    if (active_ == nullptr || !active_->usable()) {
        // No tunnel this instant (starting, reconnecting, or a rotation handover): hold the
        // client briefly rather than turn it away.
        if (pending_.size() >= config_.max_pending) {
            ctx_.metrics.connections_rejected.add();
            legs_.create(ctx_, &legs_)->reject(fd);
            return;
        }
        pending_.push_back({fd, ctx_.now_ns});
        return;
    }
    open_stream_for(fd);
}

void Initiator::open_stream_for(int fd) noexcept {
    TcpLeg* leg = legs_.create(ctx_, &legs_);
    tunnel::Stream* stream = active_->open_stream(pt::StreamProtocol::Tcp, {}, leg);
    if (stream == nullptr) {
        ctx_.metrics.connections_rejected.add();
        FERRY_LOG(Debug,
                  "client rejected: the tunnel connection takes no new stream now (stream limit "
                  "reached, or no free buffer for the OPEN)");
        leg->reject(fd);
        return;
    }
    ctx_.metrics.connections_accepted.add();
    leg->start_accepted(fd, stream);
}

void Initiator::flush_pending() noexcept {
    std::vector<PendingClient> waiting;
    waiting.swap(pending_);
    for (const PendingClient& p : waiting) {
        open_stream_for(p.fd);
    }
}

void Initiator::on_session_ready(tunnel::Session& session) noexcept {
    failures_ = 0;
    if (active_ != nullptr && active_ != &session) {
        // A replacement came up while the old connection drains: move new streams over.
        active_->drain();
    }
    active_ = &session;
    update_ready();
    flush_pending();
}

tunnel::StreamHandler* Initiator::on_stream_open(tunnel::Session&, tunnel::Stream&,
                                                 const pt::Open&) noexcept {
    // The TCP role takes no streams opened from the terminator side.
    return nullptr;
}

void Initiator::on_session_draining(tunnel::Session& session) noexcept {
    if (&session == active_) {
        active_ = nullptr;
        update_ready();
        connect_tunnel();
    }
}

void Initiator::on_session_closed(tunnel::Session& session) noexcept {
    ctx_.metrics.tunnel_disconnects.add();
    bool was_active = &session == active_;
    if (was_active) {
        active_ = nullptr;
    }
    retire_session(session);
    update_ready();
    if (active_ == nullptr && !connecting_ && !draining_) {
        schedule_reconnect();
    }
}

void Initiator::on_session_rotation_due(tunnel::Session& session, const char* why) noexcept {
    if (&session != active_ || draining_) {
        return;
    }
    // Make-before-break: the new connection becomes active when its HELLO arrives
    // (on_session_ready), and only then does this one drain.
    FERRY_LOG(Info, "tunnel rotation: %s; opening a new connection", why);
    connect_tunnel();
}

void Initiator::update_ready() noexcept {
    bool up = active_ != nullptr && active_->usable();
    ctx_.metrics.tunnel_up.set(up ? 1 : 0);
    ctx_.metrics.ready.set(up ? 1 : 0);
}

void Initiator::tick(uint64_t now_ns) noexcept {
    tick_sessions(now_ns);
    // Clients that waited a whole connect timeout for a tunnel get a clean close.
    size_t kept = 0;
    for (const PendingClient& p : pending_) {
        if (now_ns - p.since_ns >= ctx_.tuning.connect_timeout_ns) {
            ctx_.metrics.connections_rejected.add();
            legs_.create(ctx_, &legs_)->reject(p.fd);
        } else {
            pending_[kept++] = p;
        }
    }
    pending_.resize(kept);
    if (reconnect_pending_ && now_ns >= reconnect_at_ns_) {
        connect_tunnel();
    }
}

void Initiator::drain() noexcept {
    draining_ = true;
    reconnect_pending_ = false;
    acceptor_.stop();
    for (const PendingClient& p : pending_) {
        legs_.create(ctx_, &legs_)->reject(p.fd);
    }
    pending_.clear();
    if (connecting_) {
        io_uring_prep_cancel(ctx_.ring.sqe(nullptr), &connect_op_, 0);
    }
    for (auto& s : sessions_) {
        s->drain();
    }
}

bool Initiator::idle() const noexcept {
    return draining_ && sessions_.empty() && legs_.live() == 0 && acceptor_.idle() &&
           connect_ops_ == 0;
}

}  // namespace ferry::role
