#include "ferry/role/initiator.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "ferry/base/check.h"
#include "ferry/base/log.h"
#include "ferry/role/grpc_server.h"

namespace ferry::role {

namespace pt = proto::tunnel;

absl::Status Initiator::Listener::start() noexcept {
    if (absl::Status st = acceptor_.listen(url_.address); !st.ok()) {
        return st;
    }
    acceptor_.start();
    return absl::OkStatus();
}

Initiator::Initiator(loop::Context& ctx, ShardMetrics& metrics, ProcessLimits& limits,
                     InitiatorConfig config) noexcept
    : limits_(limits),
      config_(std::move(config)),
      endpoint_(ctx, metrics, config_.tuning, config_.security, config_.node_name, "initiator") {
    TcpClientLimits client_limits;
    client_limits.process = &limits_;
    client_limits.max_pending = config_.max_pending;
    client_limits.hold_ns = ctx.socket_tuning.connect_timeout_ns;
    clients_.add(
        pt::StreamProtocol::Tcp,
        std::make_unique<TcpClients>(ctx, metrics.role, endpoint_.legs(), *this, client_limits));
    WsClientOptions ws_options;
    ws_options.process = &limits_;
    ws_options.max_message_size = config_.ws_max_message;
    ws_options.ping_interval_ns = config_.ws_ping_interval_ns;
    ws_options.idle_timeout_ns = config_.ws_idle_timeout_ns;
    ws_options.allowed_origins = config_.ws_allowed_origins;
    ws_options.handshake_ns = ctx.socket_tuning.connect_timeout_ns;
    ws_options.node_name = config_.node_name;
    ws_options.route_key = config_.route_key;
    ws_options.serves_tls = config_.listener_tls.has_value();
    if (ws_options.serves_tls) {
        ws_options.listener_tls = *config_.listener_tls;
    }
    clients_.add(pt::StreamProtocol::WebSocket,
                 std::make_unique<WsClients>(ctx, metrics.role, metrics.client_transport, *this,
                                             std::move(ws_options)));
    for (size_t i = 0; i < config_.peers.size(); ++i) {
        // Ids are the addresses as IP:port, so every process with the same --peer set (in any
        // order) ranks the peers alike.
        const double weight = i < config_.peer_weights.size() ? config_.peer_weights[i] : 1.0;
        const absl::Status st = peer_set_.add(config_.peers[i].to_string(), weight);
        FERRY_CHECK(st.ok());
    }
    usable_.assign(config_.peers.size(), nullptr);
    open_per_peer_.assign(config_.peers.size(), 0);
    retired_.assign(config_.peers.size(), false);
    from_dns_.assign(config_.peers.size(), false);
    if (metrics.peers.empty()) {
        for (size_t p = 0; p < peer_set_.size(); ++p) {
            metrics.peers.emplace_back(std::string(peer_set_.id(p)));
        }
    }
    FERRY_CHECK(metrics.peers.size() == config_.peers.size());
    GrpcClientOptions grpc_options;
    grpc_options.process = &limits_;
    grpc_options.max_message_size = config_.grpc_max_message;
    grpc_options.handshake_ns = ctx.socket_tuning.connect_timeout_ns;
    grpc_options.node_name = config_.node_name;
    grpc_options.route_key = config_.route_key;
    grpc_options.serves_tls = config_.listener_tls.has_value();
    if (grpc_options.serves_tls) {
        // The same certificate as wss:// listeners; gRPC clients insist on ALPN h2.
        grpc_options.listener_tls = *config_.listener_tls;
        grpc_options.listener_tls.alpn = "h2";
    }
    clients_.add(pt::StreamProtocol::Grpc,
                 std::make_unique<GrpcClients>(ctx, metrics.role, metrics.client_transport, *this,
                                               std::move(grpc_options)));
    const uint32_t per_peer = std::max<uint32_t>(config_.tunnels_per_peer, 1);
    for (size_t p = 0; p < config_.peers.size(); ++p) {
        for (uint32_t i = 0; i < per_peer; ++i) {
            (void)add_connector(p);
        }
    }
    wanted_.assign(config_.peers.size(), per_peer);
    if (config_.serves_triggers) {
        triggers_ = std::make_unique<Triggers>(ctx, *this, config_.trigger);
    }
}

Connector& Initiator::add_connector(size_t peer) noexcept {
    connectors_.push_back(std::make_unique<Connector>(
        endpoint_, static_cast<ConnectorEvents*>(this), config_.peers[peer],
        config_.seed * 31 + static_cast<uint64_t>(connectors_.size()),
        config_.handshake_timeout_ns));
    peer_of_.push_back(peer);
    if (peer < endpoint_.metrics().peers.size()) {
        connectors_.back()->set_peer_counters(&endpoint_.metrics().peers[peer].tunnel);
    }
    return *connectors_.back();
}

void Initiator::reload() noexcept {
    endpoint_.reload();
    clients_.for_each([](ClientProtocol& h) { h.reload(); });
}

// Connectors go first: their sessions' streams hold legs and handlers of the protocols.
Initiator::~Initiator() { connectors_.clear(); }

bool Initiator::start() noexcept {
    if (!endpoint_.init_tls()) {
        return false;
    }
    for (const ServiceUrl& url : config_.listen) {
        ClientProtocol* handler = clients_.find(url.protocol());
        if (handler == nullptr) {
            FERRY_LOG(Error, "initiator: no handler for %s listeners (%s)",
                      protocol_name(url.protocol()), url.text);
            return false;
        }
        if (absl::Status st = handler->prepare(); !st.ok()) {
            FERRY_LOG(Error, "initiator: %s: %s", url.text, st.message());
            return false;
        }
        listeners_.push_back(std::make_unique<Listener>(endpoint_.ctx().ring, url, handler));
        if (absl::Status st = listeners_.back()->start(); !st.ok()) {
            FERRY_LOG(Error, "initiator: %s: %s", url.text, st.message());
            return false;
        }
    }
    for (auto& c : connectors_) {
        c->start();
    }
    return true;
}

void Initiator::find_usable() noexcept {
    std::fill(usable_.begin(), usable_.end(), nullptr);
    for (size_t i = 0; i < connectors_.size(); ++i) {
        // The peer's connection with the fewest streams: with one connection per terminator
        // shard, that spreads streams over its shards (long-lived ones included).
        tunnel::Session* s = connectors_[i]->usable();
        tunnel::Session*& best = usable_[peer_of_[i]];
        if (s != nullptr && (best == nullptr || s->stream_count() < best->stream_count())) {
            best = s;
        }
    }
}

route::Choice Initiator::route_of(std::string_view key, bool* any_usable) noexcept {
    find_usable();
    const route::Choice c =
        peer_set_.choose_if(key, [this](size_t p) noexcept { return usable_[p] != nullptr; });
    *any_usable = c.found();
    return c.found() ? c : peer_set_.choose(key);
}

tunnel::Stream* Initiator::open_stream(pt::StreamProtocol protocol, std::string_view routing_key,
                                       std::span<const pt::MetadataEntry> metadata,
                                       tunnel::StreamHandler* handler) noexcept {
    // A peer without a usable connection is skipped: its keys go to their next-highest peer
    // until it is back, and only its keys move.
    find_usable();
    const route::Choice c = peer_set_.choose_if(
        routing_key, [this](size_t p) noexcept { return usable_[p] != nullptr; });
    if (!c.found()) {
        return nullptr;
    }
    tunnel::Stream* stream =
        usable_[c.endpoint]->open_stream(protocol, routing_key, metadata, handler);
    if (stream != nullptr) {
        endpoint_.metrics().peers[c.endpoint].streams.add();
    }
    return stream;
}

void Initiator::RoutesEndpoint::serve(std::string_view method, std::string_view query,
                                      std::string_view /*body*/, AdminReply& reply) noexcept {
    if (method != "GET") {
        reply.respond(405, "text/plain", "use GET /routes?key=K\n");
        return;
    }
    KeyBuffer key;
    if (!query_param(query, "key", &key)) {
        reply.respond(400, "text/plain", "name the routing key: GET /routes?key=K\n");
        return;
    }
    bool usable = false;
    const route::Choice c = owner_.route_of(key.view(), &usable);
    nlohmann::json j;
    j["key"] = std::string(key.view());
    j["endpoint"] = nullptr;
    j["score"] = nullptr;
    j["runner_up"] = nullptr;
    j["runner_up_score"] = nullptr;
    if (c.found()) {
        j["endpoint"] = owner_.peer_id(c.endpoint);
        j["score"] = c.score;
    }
    if (c.runner_up != route::Choice::kNone) {
        j["runner_up"] = owner_.peer_id(c.runner_up);
        j["runner_up_score"] = c.runner_up_score;
    }
    // False: no peer has a usable tunnel now, and the answer is the choice among all of them.
    j["usable"] = usable;
    reply.respond(200, "application/json",
                  j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

bool Initiator::tunnel_usable() const noexcept {
    for (const auto& c : connectors_) {
        if (c->usable() != nullptr) {
            return true;
        }
    }
    return false;
}

void Initiator::on_connector_changed(Connector& connector) noexcept {
    if (config_.tunnels_per_peer == 0 && !draining_) {
        if (const tunnel::Session* s = connector.usable(); s != nullptr && s->peer_shards() > 0) {
            // Enough connections from all our shards together for each of the peer's shards to
            // get one; at least one, and a bound against a peer that claims absurd counts.
            constexpr uint32_t kMaxTunnelsPerPeer = 64;
            const uint32_t shards = std::max<uint32_t>(config_.shards, 1);
            const uint32_t want = std::clamp<uint32_t>((s->peer_shards() + shards - 1) / shards, 1,
                                                       kMaxTunnelsPerPeer);
            for (size_t i = 0; i < connectors_.size(); ++i) {
                if (connectors_[i].get() == &connector && wanted_[peer_of_[i]] < want) {
                    wanted_[peer_of_[i]] = want;
                    grow_due_ = true;
                }
            }
        }
    }
    int64_t up = 0;
    std::deque<PeerMetrics>& peers = endpoint_.metrics().peers;
    for (PeerMetrics& p : peers) {
        p.up.set(0);
    }
    for (size_t i = 0; i < connectors_.size(); ++i) {
        if (connectors_[i]->usable() != nullptr) {
            ++up;
            peers[peer_of_[i]].up.add(1);
        }
    }
    Metrics& m = endpoint_.role_metrics();
    m.tunnel_up.set(up);
    m.ready.set(up > 0 ? 1 : 0);
    if (up > 0 && !draining_) {
        clients_.for_each([](ClientProtocol& h) { h.on_tunnel_usable(); });
        if (triggers_ != nullptr) {
            triggers_->on_tunnel_usable();
        }
    }
}

void Initiator::grow_connectors() noexcept {
    grow_due_ = false;
    if (draining_) {
        return;
    }
    for (size_t p = 0; p < wanted_.size(); ++p) {
        if (retired_[p]) {
            continue;
        }
        uint32_t have = 0;
        for (size_t i = 0; i < connectors_.size(); ++i) {
            have += peer_of_[i] == p && !connectors_[i]->draining() ? 1U : 0U;
        }
        if (have >= wanted_[p]) {
            continue;
        }
        FERRY_LOG(Info,
                  "peer %s serves tunnels on several shards: opening %u more tunnel "
                  "connection(s) from this shard (%u in all)",
                  config_.peers[p].to_string(), wanted_[p] - have, wanted_[p]);
        for (uint32_t i = have; i < wanted_[p]; ++i) {
            add_connector(p).start();
        }
    }
}

void Initiator::housekeeping() noexcept {
    if (config_.dns_peers != nullptr && !draining_ &&
        config_.dns_peers->generation() != dns_generation_) {
        apply_dns_peers();
    }
    if (grow_due_) {
        grow_connectors();
    }
    endpoint_.housekeeping();
}

size_t Initiator::add_peer(const io::SocketAddress& address) noexcept {
    const size_t p = config_.peers.size();
    config_.peers.push_back(address);
    const absl::Status st = peer_set_.add(address.to_string());
    FERRY_CHECK(st.ok());  // a new address, so a new id
    usable_.push_back(nullptr);
    open_per_peer_.push_back(0);
    retired_.push_back(false);
    from_dns_.push_back(true);
    wanted_.push_back(std::max<uint32_t>(config_.tunnels_per_peer, 1));
    ShardMetrics& m = endpoint_.metrics();
    {
        std::lock_guard<std::mutex> lock(m.peers_mu);
        m.peers.emplace_back(address.to_string());
    }
    return p;
}

void Initiator::prune_connectors() noexcept {
    size_t kept = 0;
    for (size_t i = 0; i < connectors_.size(); ++i) {
        if (connectors_[i]->draining() && connectors_[i]->idle()) {
            continue;  // nothing left in flight: it goes
        }
        if (kept != i) {
            connectors_[kept] = std::move(connectors_[i]);
            peer_of_[kept] = peer_of_[i];
        }
        ++kept;
    }
    connectors_.resize(kept);
    peer_of_.resize(kept);
}

void Initiator::apply_dns_peers() noexcept {
    uint64_t generation = 0;
    const std::vector<io::SocketAddress> now = config_.dns_peers->read(&generation);
    dns_generation_ = generation;
    prune_connectors();
    std::vector<bool> named(config_.peers.size(), false);
    for (const io::SocketAddress& a : now) {
        const std::string id = a.to_string();
        std::optional<size_t> p = peer_set_.find(id);
        if (!p.has_value()) {
            p = add_peer(a);
            named.push_back(true);
            FERRY_LOG(Info, "peer %s: found by DNS, dialing it", id);
        } else if (retired_[*p]) {
            retired_[*p] = false;
            FERRY_LOG(Info, "peer %s: named by DNS again, dialing it", id);
        } else {
            named[*p] = true;
            continue;
        }
        named[*p] = true;
        for (uint32_t i = 0; i < wanted_[*p]; ++i) {
            add_connector(*p).start();
        }
    }
    for (size_t p = 0; p < config_.peers.size(); ++p) {
        if (from_dns_[p] && !named[p] && !retired_[p]) {
            // Its open streams finish on their connections; new ones go to the next choice.
            retired_[p] = true;
            FERRY_LOG(Info, "peer %s: no longer in DNS; its tunnels drain, its keys move",
                      config_.peers[p].to_string());
            Connector* last = nullptr;
            for (size_t i = 0; i < connectors_.size(); ++i) {
                if (peer_of_[i] == p) {
                    connectors_[i]->drain();
                    last = connectors_[i].get();
                }
            }
            if (last != nullptr) {
                on_connector_changed(*last);  // ferry_peer_up and readiness say so at once
            }
        }
    }
}

void Initiator::tick(uint64_t now_ns) noexcept {
    endpoint_.tick(now_ns);
    // Open streams per peer for /metrics (on its usable connections): a walk over a few
    // connectors each tick, not a write per stream.
    std::fill(open_per_peer_.begin(), open_per_peer_.end(), 0);
    for (size_t i = 0; i < connectors_.size(); ++i) {
        if (const tunnel::Session* s = connectors_[i]->usable(); s != nullptr) {
            open_per_peer_[peer_of_[i]] += static_cast<int64_t>(s->stream_count());
        }
    }
    std::deque<PeerMetrics>& peers = endpoint_.metrics().peers;
    for (size_t p = 0; p < peers.size() && p < open_per_peer_.size(); ++p) {
        peers[p].streams_open.set(open_per_peer_[p]);
    }
    for (auto& c : connectors_) {
        c->tick(now_ns);
    }
    if (triggers_ != nullptr) {
        triggers_->tick(now_ns);
    }
    clients_.for_each([now_ns](ClientProtocol& h) { h.tick(now_ns); });
}

void Initiator::stop() noexcept {
    const int64_t open = endpoint_.metrics().tunnel.streams_active.value();
    if (open > 0) {
        FERRY_LOG(Warn, "drain deadline passed: resetting %d open stream(s)", open);
    }
    for (auto& c : connectors_) {
        c->abort_all("the drain deadline passed");
    }
}

void Initiator::drain() noexcept {
    draining_ = true;
    for (auto& l : listeners_) {
        l->stop();
    }
    clients_.for_each([](ClientProtocol& h) { h.drain(); });
    for (auto& c : connectors_) {
        c->drain();
    }
}

bool Initiator::idle() const noexcept {
    if (!draining_ || endpoint_.role_metrics().connections_active.value() != 0) {
        return false;
    }
    bool idle = true;
    for (const auto& l : listeners_) {
        idle = idle && l->idle();
    }
    for (const auto& c : connectors_) {
        idle = idle && c->idle();
    }
    clients_.for_each([&idle](const ClientProtocol& h) { idle = idle && h.idle(); });
    return idle && (triggers_ == nullptr || triggers_->idle());
}

void Initiator::dump() const noexcept {
    FERRY_LOG(Info, "initiator: %zu peer(s), %zu connector(s), %d local connection(s)",
              config_.peers.size(), connectors_.size(),
              static_cast<int>(endpoint_.role_metrics().connections_active.value()));
    for (const auto& c : connectors_) {
        c->dump();
    }
}

}  // namespace ferry::role
