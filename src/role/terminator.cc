#include "ferry/role/terminator.h"

#include <unistd.h>

#include <algorithm>

#include "ferry/base/log.h"

namespace ferry::role {

namespace pt = proto::tunnel;

Terminator::Terminator(tunnel::Context& ctx, TerminatorConfig config) noexcept
    : ctx_(ctx), config_(std::move(config)), acceptor_(ctx.ring, this) {}

Terminator::~Terminator() {
    for (auto& s : sessions_) {
        s->abort("shutting down");
    }
}

bool Terminator::start() noexcept {
    absl::StatusOr<std::unique_ptr<ShardTls>> tls = ShardTls::create(config_.security);
    if (!tls.ok()) {
        FERRY_LOG(Error, "terminator: %s", tls.status().message());
        return false;
    }
    tls_ = std::move(*tls);
    if (absl::Status st = acceptor_.listen(config_.listen_tunnel); !st.ok()) {
        FERRY_LOG(Error, "terminator: %s", st.message());
        return false;
    }
    acceptor_.start();
    ctx_.metrics.ready.set(1);
    return true;
}

void Terminator::on_accepted(int fd) noexcept {
    if (sessions_.size() >= config_.max_tunnels) {
        FERRY_LOG(Warn, "tunnel connection refused: %zu tunnels on this shard (limit)",
                  sessions_.size());
        ctx_.metrics.connections_rejected.add();
        ::close(fd);
        return;
    }
    ctx_.metrics.tunnel_connects.add();
    auto session = std::make_unique<tunnel::Session>(
        ctx_, static_cast<tunnel::SessionOwner*>(this), tls_->make_link(ctx_, fd),
        tunnel::Session::Role::Terminator, config_.node_name);
    tunnel::Session* s = session.get();
    sessions_.push_back(std::move(session));
    s->start();
}

void Terminator::on_session_ready(tunnel::Session&) noexcept {
    ctx_.metrics.tunnel_up.add(1);
}

tunnel::StreamHandler* Terminator::on_stream_open(tunnel::Session&, tunnel::Stream& stream,
                                                  const pt::Open& open) noexcept {
    if (open.protocol != pt::StreamProtocol::Tcp || draining_ ||
        (config_.max_connections != 0 && legs_.live() >= config_.max_connections)) {
        return nullptr;
    }
    TcpLeg* leg = legs_.create(ctx_, &legs_);
    ctx_.metrics.connections_accepted.add();
    leg->start_connect(config_.upstream, &stream);
    return leg;
}

void Terminator::on_session_draining(tunnel::Session&) noexcept {}

void Terminator::on_session_rotation_due(tunnel::Session& session, const char* why) noexcept {
    // Only the initiator can dial: GOAWAY asks it to open a fresh connection (it does so before
    // this one is gone) while the streams here finish on the old keys.
    FERRY_LOG(Info, "tunnel rotation: %s; asking the initiator to reconnect", why);
    session.drain();
}

void Terminator::on_session_closed(tunnel::Session& session) noexcept {
    ctx_.metrics.tunnel_disconnects.add();
    if (session.peer_name().empty() && session.stream_count() == 0) {
        // Never completed HELLO: not counted as up.
    } else {
        ctx_.metrics.tunnel_up.add(-1);
    }
    auto it = std::find_if(sessions_.begin(), sessions_.end(),
                           [&](const auto& p) { return p.get() == &session; });
    if (it != sessions_.end()) {
        closed_.push_back(std::move(*it));
        sessions_.erase(it);
    }
}

void Terminator::tick(uint64_t now_ns) noexcept {
    tls_->maybe_reload(now_ns);
    for (auto& s : sessions_) {
        s->tick(now_ns);
    }
}

void Terminator::housekeeping() noexcept { closed_.clear(); }

void Terminator::dump() const noexcept {
    FERRY_LOG(Info, "terminator: %zu tunnel connection(s), %zu local connection(s)", sessions_.size(),
              legs_.live());
    for (const auto& s : sessions_) {
        s->dump();
    }
}

void Terminator::drain() noexcept {
    draining_ = true;
    acceptor_.stop();
    ctx_.metrics.ready.set(0);
    for (auto& s : sessions_) {
        s->drain();
    }
}

bool Terminator::idle() const noexcept {
    return draining_ && sessions_.empty() && legs_.live() == 0 && acceptor_.idle();
}

}  // namespace ferry::role
