#include "ferry/role/terminator.h"

#include <unistd.h>

#include <algorithm>

#include "ferry/base/log.h"
#include "ferry/role/tcp_protocol.h"

namespace ferry::role {

namespace pt = proto::tunnel;

Terminator::Terminator(loop::Context& ctx, ShardMetrics& metrics, TerminatorConfig config) noexcept
    : config_(std::move(config)),
      endpoint_(ctx, metrics, config_.tuning, config_.security, config_.node_name, "terminator"),
      acceptor_(ctx.ring, this) {
    for (const ServiceUrl& url : config_.upstreams) {
        if (url.protocol() == pt::StreamProtocol::Tcp) {
            upstreams_.add(pt::StreamProtocol::Tcp,
                           std::make_unique<TcpUpstreams>(ctx, metrics.role, endpoint_.legs(), url,
                                                          config_.max_connections));
        }
    }
}

Terminator::~Terminator() {
    for (auto& s : sessions_) {
        s->abort("shutting down");
    }
}

bool Terminator::start_without_listener() noexcept {
    if (!endpoint_.init_tls()) {
        return false;
    }
    endpoint_.role_metrics().ready.set(1);
    return true;
}

bool Terminator::start() noexcept {
    if (!endpoint_.init_tls()) {
        return false;
    }
    if (absl::Status st = acceptor_.listen(config_.listen_tunnel); !st.ok()) {
        FERRY_LOG(Error, "terminator: %s", st.message());
        return false;
    }
    acceptor_.start();
    endpoint_.role_metrics().ready.set(1);
    return true;
}

void Terminator::adopt_tunnel_connection(int fd) noexcept {
    Metrics& m = endpoint_.role_metrics();
    if (sessions_.size() >= config_.max_tunnels) {
        FERRY_LOG(Warn, "tunnel connection refused: %zu tunnels on this shard (limit)",
                  sessions_.size());
        m.connections_rejected.add();
        ::close(fd);
        return;
    }
    m.tunnel_connects.add();
    sessions_.push_back(endpoint_.start_session(fd, this, tunnel::Session::Role::Terminator));
}

void Terminator::on_session_ready(tunnel::Session&) noexcept {
    endpoint_.role_metrics().tunnel_up.add(1);
}

tunnel::OpenDecision Terminator::on_stream_open(tunnel::Session& session, tunnel::Stream& stream,
                                                const pt::Open& open) noexcept {
    if (draining_) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream, "draining");
    }
    UpstreamProtocol* handler = upstreams_.find(open.protocol);
    if (handler == nullptr) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::UnsupportedProtocol,
                                            "no upstream or sink serves this stream protocol");
    }
    return handler->open(session, stream, open);
}

void Terminator::on_session_rotation_due(tunnel::Session& session, const char* why) noexcept {
    // Only the initiator can dial: GOAWAY asks it to open a fresh connection (it does so before
    // this one is gone) while the streams here finish on the old keys.
    FERRY_LOG(Info, "tunnel rotation: %s; asking the initiator to reconnect", why);
    session.drain();
}

void Terminator::on_session_closed(tunnel::Session& session) noexcept {
    Metrics& m = endpoint_.role_metrics();
    m.tunnel_disconnects.add();
    if (session.hello_exchanged()) {
        m.tunnel_up.add(-1);  // it was counted up in on_session_ready
    }
    auto it = std::find_if(sessions_.begin(), sessions_.end(),
                           [&](const auto& p) { return p.get() == &session; });
    if (it != sessions_.end()) {
        endpoint_.retire(std::move(*it));
        sessions_.erase(it);
    }
}

void Terminator::tick(uint64_t now_ns) noexcept {
    endpoint_.tick(now_ns);
    for (auto& s : sessions_) {
        s->tick(now_ns);
    }
}

void Terminator::drain() noexcept {
    draining_ = true;
    acceptor_.stop();
    endpoint_.role_metrics().ready.set(0);
    upstreams_.for_each([](UpstreamProtocol& h) { h.drain(); });
    for (auto& s : sessions_) {
        s->drain();
    }
}

bool Terminator::idle() const noexcept {
    bool idle = draining_ && sessions_.empty() && acceptor_.idle() &&
                endpoint_.role_metrics().connections_active.value() == 0;
    upstreams_.for_each([&idle](const UpstreamProtocol& h) { idle = idle && h.idle(); });
    return idle;
}

void Terminator::dump() const noexcept {
    FERRY_LOG(Info, "terminator: %zu tunnel connection(s), %d local connection(s)",
              sessions_.size(),
              static_cast<int>(endpoint_.role_metrics().connections_active.value()));
    for (const auto& s : sessions_) {
        s->dump();
    }
}

}  // namespace ferry::role
