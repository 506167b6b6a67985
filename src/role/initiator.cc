#include "ferry/role/initiator.h"

#include "ferry/base/log.h"

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
    for (size_t i = 0; i < config_.peers.size(); ++i) {
        connectors_.push_back(std::make_unique<Connector>(
            endpoint_, static_cast<ConnectorEvents*>(this), config_.peers[i],
            config_.seed * 31 + static_cast<uint64_t>(i), config_.handshake_timeout_ns));
    }
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

tunnel::Stream* Initiator::open_stream(pt::StreamProtocol protocol, std::string_view routing_key,
                                       std::span<const pt::MetadataEntry> metadata,
                                       tunnel::StreamHandler* handler) noexcept {
    for (auto& c : connectors_) {
        if (tunnel::Session* s = c->usable(); s != nullptr) {
            return s->open_stream(protocol, routing_key, metadata, handler);
        }
    }
    return nullptr;
}

bool Initiator::tunnel_usable() const noexcept {
    for (const auto& c : connectors_) {
        if (c->usable() != nullptr) {
            return true;
        }
    }
    return false;
}

void Initiator::on_connector_changed(Connector&) noexcept {
    int64_t up = 0;
    for (const auto& c : connectors_) {
        up += c->usable() != nullptr ? 1 : 0;
    }
    Metrics& m = endpoint_.role_metrics();
    m.tunnel_up.set(up);
    m.ready.set(up > 0 ? 1 : 0);
    if (up > 0 && !draining_) {
        clients_.for_each([](ClientProtocol& h) { h.on_tunnel_usable(); });
    }
}

void Initiator::tick(uint64_t now_ns) noexcept {
    endpoint_.tick(now_ns);
    for (auto& c : connectors_) {
        c->tick(now_ns);
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
    return idle;
}

void Initiator::dump() const noexcept {
    FERRY_LOG(Info, "initiator: %zu peer(s), %d local connection(s)", connectors_.size(),
              static_cast<int>(endpoint_.role_metrics().connections_active.value()));
    for (const auto& c : connectors_) {
        c->dump();
    }
}

}  // namespace ferry::role
