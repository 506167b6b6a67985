#include "ferry/role/terminator.h"

#include <unistd.h>

#include <algorithm>

#include "ferry/base/log.h"

namespace ferry::role {

namespace pt = proto::tunnel;

Terminator::Terminator(tunnel::Context& ctx, TerminatorConfig config) noexcept
    : TunnelEndpoint(ctx, config.security, "terminator"), config_(std::move(config)) {}

bool Terminator::start() noexcept {
    if (!init_tls()) {
        return false;
    }
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
    (void)add_session(fd, tunnel::Session::Role::Terminator, config_.node_name);
}

void Terminator::on_session_ready(tunnel::Session&) noexcept { ctx_.metrics.tunnel_up.add(1); }

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
    retire_session(session);
}

void Terminator::tick(uint64_t now_ns) noexcept { tick_sessions(now_ns); }

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
