#include "ferry/role/terminator.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <tuple>

#include "ferry/base/log.h"
#include "ferry/role/grpc_sink.h"
#include "ferry/role/grpc_upstream.h"
#include "ferry/role/keyed_upstreams.h"
#include "ferry/role/tcp_protocol.h"
#include "ferry/role/ws_sink.h"
#include "ferry/role/ws_upstream.h"

namespace ferry::role {

namespace pt = proto::tunnel;

namespace {

// The remote address of an accepted socket, for logs ("?" when the kernel no longer knows it).
std::string peer_of(int fd) {
    io::SocketAddress a;
    a.length = sizeof(a.storage);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length) != 0) {
        return "?";
    }
    return a.to_string();
}

}  // namespace

Terminator::Terminator(loop::Context& ctx, ShardMetrics& metrics, ProcessLimits& limits,
                       TerminatorConfig config) noexcept
    : config_(std::move(config)),
      endpoint_(ctx, metrics, config_.tuning, config_.security, config_.node_name, "terminator"),
      acceptor_(ctx.ring, this) {
    std::vector<ServiceUrl> tcp;
    std::vector<ServiceUrl> ws_urls;
    std::vector<ServiceUrl> grpc_urls;
    std::vector<std::unique_ptr<UpstreamProtocol>> ws_members;
    std::vector<std::unique_ptr<UpstreamProtocol>> grpc_members;
    for (const ServiceUrl& url : config_.upstreams) {
        if (url.protocol() == pt::StreamProtocol::Tcp) {
            tcp.push_back(url);
        } else if (url.protocol() == pt::StreamProtocol::WebSocket) {
            WsUpstreamOptions o;
            o.process = &limits;
            o.per_tunnel_connects = config_.max_upstream_connects_per_tunnel;
            o.max_message_size = config_.ws_max_message;
            o.node_name = config_.node_name;
            o.handshake_ns = ctx.socket_tuning.connect_timeout_ns;
            ws_urls.push_back(url);
            ws_members.push_back(
                std::make_unique<WsUpstreams>(ctx, metrics.role, url, std::move(o)));
        } else if (url.protocol() == pt::StreamProtocol::Grpc) {
            GrpcUpstreamOptions o;
            o.process = &limits;
            o.max_message_size = config_.grpc_max_message;
            o.node_name = config_.node_name;
            o.connect_ns = ctx.socket_tuning.connect_timeout_ns;
            if (url.tls()) {
                o.tls = config_.upstream_tls;
            }
            grpc_urls.push_back(url);
            grpc_members.push_back(std::make_unique<GrpcUpstreams>(
                ctx, metrics.role, metrics.client_transport, url, std::move(o)));
        }
    }
    // Several of one protocol share its streams by routing key; one serves them all.
    for (auto [protocol, members, urls] :
         {std::tuple{pt::StreamProtocol::WebSocket, &ws_members, &ws_urls},
          std::tuple{pt::StreamProtocol::Grpc, &grpc_members, &grpc_urls}}) {
        if (members->size() == 1) {
            upstreams_.add(protocol, std::move(members->front()));
        } else if (members->size() > 1) {
            upstreams_.add(protocol, std::make_unique<KeyedUpstreams>(std::move(*members), *urls));
        }
    }
    if (!tcp.empty()) {
        TcpUpstreamLimits l;
        l.process = &limits;
        l.per_tunnel_connects = config_.max_upstream_connects_per_tunnel;
        upstreams_.add(
            pt::StreamProtocol::Tcp,
            std::make_unique<TcpUpstreams>(ctx, metrics.role, endpoint_.legs(), std::move(tcp), l));
    }
    if (upstreams_.find(pt::StreamProtocol::WebSocket) == nullptr) {
        // No ws upstream: WebSocket streams get the built-in sink.
        WsSinkOptions ws;
        ws.max_message_size = config_.ws_max_message;
        ws.node_name = config_.node_name;
        ws.shard_index = config_.shard_index;
        ws.results = config_.results;
        ws.hooks = config_.hooks;
        upstreams_.add(pt::StreamProtocol::WebSocket,
                       std::make_unique<WsSink>(ctx, metrics.role, std::move(ws)));
    }
    if (upstreams_.find(pt::StreamProtocol::Grpc) == nullptr) {
        // No grpc upstream: gRPC streams get the built-in lane7 sink.
        GrpcSinkOptions g;
        g.max_message_size = config_.grpc_max_message;
        g.node_name = config_.node_name;
        g.shard_index = config_.shard_index;
        g.results = config_.results;
        g.hooks = config_.hooks;
        upstreams_.add(pt::StreamProtocol::Grpc,
                       std::make_unique<GrpcSink>(ctx, metrics.role, std::move(g)));
    }
}

Terminator::~Terminator() {
    if (config_.placement != nullptr) {
        config_.placement->detach(config_.shard_index);
    }
    for (TunnelConnection& c : connections_) {
        c.session->abort("shutting down");
        uncount();
    }
}

bool Terminator::prepare_upstreams() noexcept {
    bool ok = true;
    upstreams_.for_each([&ok](UpstreamProtocol& u) {
        if (absl::Status st = u.prepare(); ok && !st.ok()) {
            FERRY_LOG(Error, "terminator: upstream: %s", st.message());
            ok = false;
        }
    });
    return ok;
}

bool Terminator::start_without_listener() noexcept {
    if (!endpoint_.init_tls() || !prepare_upstreams()) {
        return false;
    }
    endpoint_.role_metrics().ready.set(1);
    return true;
}

bool Terminator::start() noexcept {
    if (!endpoint_.init_tls() || !prepare_upstreams()) {
        return false;
    }
    if (absl::Status st = acceptor_.listen(config_.listen_tunnel); !st.ok()) {
        FERRY_LOG(Error, "terminator: %s", st.message());
        return false;
    }
    acceptor_.start();
    if (config_.placement != nullptr) {
        config_.placement->attach(config_.shard_index, &endpoint_.ctx().ring, this);
    }
    endpoint_.role_metrics().ready.set(1);
    return true;
}

Terminator::TunnelConnection* Terminator::find(const tunnel::Session& session) noexcept {
    for (TunnelConnection& c : connections_) {
        if (c.session.get() == &session) {
            return &c;
        }
    }
    return nullptr;
}

bool Terminator::is_pending(const TunnelConnection& c) noexcept {
    // A connection that already failed (a bad preface, a refused handshake) is on its way out:
    // it no longer takes a place in the budget.
    const tunnel::Session::State st = c.session->state();
    return !c.established && !c.closing && st != tunnel::Session::State::Closing &&
           st != tunnel::Session::State::Closed;
}

uint32_t Terminator::update_pending_gauge() noexcept {
    uint32_t pending = 0;
    for (const TunnelConnection& c : connections_) {
        pending += is_pending(c) ? 1U : 0U;
    }
    endpoint_.role_metrics().tunnel_pending.set(pending);
    return pending;
}

void Terminator::close_pending(TunnelConnection& c, const char* reason,
                               base::Counter& counter) noexcept {
    counter.add();
    FERRY_LOG_LIMITED(refusal_log_, endpoint_.ctx().now_ns, Warn,
                      "tunnel connection from %s closed: %s", c.peer, reason);
    c.closing = true;
    c.session->abort(reason);
    update_pending_gauge();
}

void Terminator::uncount() noexcept {
    if (config_.placement != nullptr) {
        config_.placement->release(config_.shard_index);
    }
}

void Terminator::adopt_tunnel_connection(int fd) noexcept {
    if (config_.placement != nullptr) {
        config_.placement->count(config_.shard_index);
    }
    serve(fd);
}

void Terminator::on_accepted(int fd) noexcept {
    TunnelPlacement* p = config_.placement;
    if (p == nullptr) {
        serve(fd);
        return;
    }
    const size_t here = config_.shard_index;
    const size_t to = p->place(here);
    if (to == here) {
        serve(fd);
        return;
    }
    // Named before the hand-off: afterwards the fd belongs to the other shard.
    const std::string peer = base::log_enabled(base::LogLevel::Debug) ? peer_of(fd) : std::string();
    if (!p->hand_off(here, to, fd, &endpoint_.ctx().ring)) {
        serve(fd);  // that shard has stopped: the count came back here
        return;
    }
    endpoint_.role_metrics().tunnel_handoffs_out.add();
    FERRY_LOG(Debug,
              "tunnel connection from %s placed on shard %u (%s; tunnel connections: here %d, "
              "there %d)",
              peer, static_cast<unsigned>(to), tunnel_placement_name(p->policy()),
              p->connections(here), p->connections(to));
}

void Terminator::on_handed_off(int fd) noexcept {
    endpoint_.role_metrics().tunnel_handoffs_in.add();
    serve(fd);
}

void Terminator::serve(int fd) noexcept {
    Metrics& m = endpoint_.role_metrics();
    const uint64_t now = endpoint_.ctx().now_ns;
    if (draining_) {
        ::close(fd);
        uncount();
        return;
    }
    if (update_pending_gauge() >= config_.max_pending) {
        // Anyone who can reach the port can open connections and say nothing: they share a
        // budget of their own, oldest out first, so a real initiator always gets in.
        auto oldest = connections_.end();
        for (auto it = connections_.begin(); it != connections_.end(); ++it) {
            if (is_pending(*it) &&
                (oldest == connections_.end() || it->accepted_ns < oldest->accepted_ns)) {
                oldest = it;
            }
        }
        if (oldest != connections_.end()) {
            close_pending(*oldest,
                          "evicted: too many connections without a completed handshake "
                          "(--max-pending-tunnels)",
                          m.pending_evicted);
        }
    }
    m.tunnel_connects.add();
    TunnelConnection c;
    c.accepted_ns = now;
    c.peer = peer_of(fd);
    c.session = endpoint_.start_session(fd, this, tunnel::Session::Role::Terminator);
    connections_.push_back(std::move(c));
    update_pending_gauge();
}

void Terminator::on_session_ready(tunnel::Session& session) noexcept {
    TunnelConnection* c = find(session);
    if (c == nullptr || c->closing) {
        return;
    }
    Metrics& m = endpoint_.role_metrics();
    if (established_ >= config_.max_tunnels) {
        close_pending(*c, "refused: --max-tunnels established tunnels on this shard",
                      m.tunnels_refused);
        return;
    }
    c->established = true;
    ++established_;
    m.tunnel_up.add(1);
    update_pending_gauge();
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
    auto it = std::find_if(connections_.begin(), connections_.end(),
                           [&](const TunnelConnection& c) { return c.session.get() == &session; });
    if (it == connections_.end()) {
        return;
    }
    if (it->established && !it->closing) {
        m.tunnel_disconnects.add();
        m.tunnel_up.add(-1);
        --established_;
    } else if (!it->established && !it->closing) {
        // It never got through its handshake and HELLO: a failed connect, not a disconnect.
        m.tunnel_connect_failures.add();
        FERRY_LOG_LIMITED(refusal_log_, endpoint_.ctx().now_ns, Warn,
                          "tunnel connection from %s failed before HELLO: %s", it->peer,
                          session.close_reason());
    }
    endpoint_.retire(std::move(it->session));
    connections_.erase(it);
    uncount();
    update_pending_gauge();
}

void Terminator::tick(uint64_t now_ns) noexcept {
    endpoint_.tick(now_ns);
    for (TunnelConnection& c : connections_) {
        if (is_pending(c) && now_ns - c.accepted_ns > config_.handshake_timeout_ns) {
            close_pending(c, "TLS handshake and HELLO not done within --handshake-timeout",
                          endpoint_.role_metrics().handshake_timeouts);
        }
    }
    for (TunnelConnection& c : connections_) {
        c.session->tick(now_ns);
    }
    upstreams_.for_each([now_ns](UpstreamProtocol& h) { h.tick(now_ns); });
}

void Terminator::stop() noexcept {
    const int64_t open = endpoint_.metrics().tunnel.streams_active.value();
    if (open > 0) {
        FERRY_LOG(Warn, "drain deadline passed: resetting %d open stream(s)", open);
    }
    for (TunnelConnection& c : connections_) {
        c.session->abort("the drain deadline passed");
    }
}

void Terminator::drain() noexcept {
    draining_ = true;
    acceptor_.stop();
    endpoint_.role_metrics().ready.set(0);
    upstreams_.for_each([](UpstreamProtocol& h) { h.drain(); });
    for (TunnelConnection& c : connections_) {
        c.session->drain();
    }
}

bool Terminator::idle() const noexcept {
    bool idle = draining_ && connections_.empty() && acceptor_.idle() &&
                endpoint_.role_metrics().connections_active.value() == 0;
    upstreams_.for_each([&idle](const UpstreamProtocol& h) { idle = idle && h.idle(); });
    return idle;
}

void Terminator::dump() const noexcept {
    FERRY_LOG(Info,
              "terminator: %zu tunnel connection(s) (%u established, %u before handshake), %d "
              "local connection(s)",
              connections_.size(), established_,
              static_cast<uint32_t>(endpoint_.role_metrics().tunnel_pending.value()),
              static_cast<int>(endpoint_.role_metrics().connections_active.value()));
    for (const TunnelConnection& c : connections_) {
        c.session->dump();
    }
}

}  // namespace ferry::role
