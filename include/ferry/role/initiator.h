// Initiator (cluster A gateway), one per shard: accepts clients on every --listen (each listener
// says its protocol), hands each to that protocol's handler, and carries the resulting streams
// over this shard's tunnel connections to the terminators (--peer, repeatable). Each peer gets
// one Connector per tunnel connection this shard keeps to it — by default as many as it takes
// for every terminator shard to get one (HELLO Shards over this process's shards, rounded up;
// see docs/shard-balance.md). Each new stream goes to the peer its routing key picks by
// rendezvous hashing among the peers with a usable connection (route::RendezvousSet, the same
// choice on every shard and in every process with the same --peer set), on that peer's connection
// with the fewest streams.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/discovery/dns_peers.h"
#include "ferry/io/acceptor.h"
#include "ferry/io/socket.h"
#include "ferry/role/admin_endpoint.h"
#include "ferry/role/connector.h"
#include "ferry/role/limits.h"
#include "ferry/role/protocol.h"
#include "ferry/role/route_key.h"
#include "ferry/role/tcp_protocol.h"
#include "ferry/role/trigger.h"
#include "ferry/role/tunnel_endpoint.h"
#include "ferry/role/ws_protocol.h"
#include "ferry/route/rendezvous_set.h"
#include "ferry/shard/service.h"

namespace ferry::role {

struct InitiatorConfig {
    std::vector<ServiceUrl> listen;
    std::vector<io::SocketAddress> peers;  // distinct (config refuses duplicates)
    std::vector<double> peer_weights;      // one per peer, or empty: all 1
    // --peer-dns: more peers, as the resolver thread last found them (null: none).
    const discovery::PeerSnapshot* dns_peers = nullptr;
    RouteKeyRule route_key;       // --route-key
    uint32_t max_pending = 4096;  // clients held while no tunnel connection is usable
    uint64_t handshake_timeout_ns = 10'000'000'000;  // TLS handshake and HELLO of a new connection
    std::string node_name;
    // Shard 0 only: the auto-trigger and POST /trigger (its options; results may be null).
    bool serves_triggers = false;
    TriggerOptions trigger;
    uint64_t ws_max_message = uint64_t{16} << 20;   // largest WebSocket message from a client
    uint32_t grpc_max_message = uint32_t{4} << 20;  // largest gRPC message, either way
    uint64_t ws_ping_interval_ns = 0;               // keepalive Ping to open clients; 0 = off
    uint64_t ws_idle_timeout_ns = 0;                // close clients silent this long; 0 = off
    std::vector<std::string> ws_allowed_origins;    // empty = any
    // wss:// listeners' certificate (--listen-tls-cert/--listen-tls-key); unset without one.
    std::optional<tls::TlsConfig> listener_tls;
    uint64_t seed = 1;  // backoff jitter
    // Tunnel connections per peer from this shard; 0 = auto (enough for the peer's shards).
    uint32_t tunnels_per_peer = 0;
    uint32_t shards = 1;  // this process's shards (for auto)
    TunnelSecurity security;
    tunnel::Tuning tuning;
};

class Initiator final : public shard::Service, public StreamOpener, private ConnectorEvents {
  public:
    // `ctx`, `metrics` and `limits` (shared by every shard) outlive the initiator. `metrics.peers`
    // is empty or holds one entry per peer, in config order (filled here when empty).
    Initiator(loop::Context& ctx, ShardMetrics& metrics, ProcessLimits& limits,
              InitiatorConfig config) noexcept;
    ~Initiator() override;

    [[nodiscard]] bool start() noexcept override;
    void drain() noexcept override;
    void stop() noexcept override;
    void reload() noexcept override;
    [[nodiscard]] bool idle() const noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void housekeeping() noexcept override;
    void dump() const noexcept override;

    // StreamOpener: the peer `routing_key` picks among those with a usable connection takes the
    // stream (rendezvous hashing; an empty key is a key like any other).
    [[nodiscard]] tunnel::Stream* open_stream(
        proto::tunnel::StreamProtocol protocol, std::string_view routing_key,
        std::span<const proto::tunnel::MetadataEntry> metadata,
        tunnel::StreamHandler* handler) noexcept override;
    [[nodiscard]] bool tunnel_usable() const noexcept override;
    // POST /trigger, on the shard that serves triggers; nullptr elsewhere.
    [[nodiscard]] AdminEndpoint* trigger_endpoint() noexcept { return triggers_.get(); }
    // GET /routes?key=K: where this shard sends a new stream with key K now, as JSON.
    [[nodiscard]] AdminEndpoint* routes_endpoint() noexcept { return &routes_; }
    // The choice open_stream makes for `key`, among the peers with a usable connection; when
    // none has one, among all (then `any_usable` is false).
    [[nodiscard]] route::Choice route_of(std::string_view key, bool* any_usable) noexcept;
    // The id of peer `index` in the rendezvous set (its address as IP:port).
    [[nodiscard]] std::string_view peer_id(size_t index) const noexcept {
        return peer_set_.id(index);
    }

  private:
    // One --listen socket and the handler of its protocol.
    class Listener final : private io::AcceptHandler {
      public:
        Listener(io::Ring& ring, ServiceUrl url, ClientProtocol* handler) noexcept
            : url_(std::move(url)), handler_(handler), acceptor_(ring, this) {}
        [[nodiscard]] absl::Status start() noexcept;
        void stop() noexcept { acceptor_.stop(); }
        [[nodiscard]] bool idle() const noexcept { return acceptor_.idle(); }

      private:
        void on_accepted(int fd) noexcept override { handler_->on_client(fd, url_); }

        ServiceUrl url_;
        ClientProtocol* handler_;
        io::Acceptor acceptor_;
    };

    // GET /routes: answers from this shard's peer set and tunnels.
    class RoutesEndpoint final : public AdminEndpoint {
      public:
        explicit RoutesEndpoint(Initiator& owner) noexcept : owner_(owner) {}
        void serve(std::string_view method, std::string_view query, std::string_view body,
                   AdminReply& reply) noexcept override;
        void cancel(AdminReply& /*reply*/) noexcept override {}

      private:
        Initiator& owner_;
    };

    // Fills usable_: per peer, its usable connection with the fewest streams, or nullptr.
    void find_usable() noexcept;
    void on_connector_changed(Connector& connector) noexcept override;
    Connector& add_connector(size_t peer) noexcept;
    // Auto tunnels_per_peer: opens the connections a peer's HELLO asked for (from housekeeping,
    // never while a loop walks connectors_).
    void grow_connectors() noexcept;
    // --peer-dns: takes the resolver's latest set (from housekeeping). New addresses become
    // peers with their own connectors; peers the name no longer has are retired (their
    // connections drain, their keys move); nothing else is touched.
    void apply_dns_peers() noexcept;
    // Appends peer `address` (weight 1) to every per-peer table; its index.
    size_t add_peer(const io::SocketAddress& address) noexcept;
    // Drops connectors that drained to the end (retired peers', rotated ones').
    void prune_connectors() noexcept;

    ProcessLimits& limits_;
    InitiatorConfig config_;
    TunnelEndpoint endpoint_;
    ProtocolRegistry<ClientProtocol> clients_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::vector<std::unique_ptr<Connector>> connectors_;
    std::unique_ptr<Triggers> triggers_;    // shard 0
    std::vector<size_t> peer_of_;           // connectors_[i] dials config_.peers[peer_of_[i]]
    std::vector<uint32_t> wanted_;          // per peer: connections asked for by its HELLO Shards
    route::RendezvousSet peer_set_;         // index i is config_.peers[i]
    std::vector<tunnel::Session*> usable_;  // per peer, refreshed by find_usable()
    std::vector<int64_t> open_per_peer_;    // per peer, scratch of tick()
    std::vector<bool> retired_;             // per peer: DNS no longer names it
    std::vector<bool> from_dns_;            // per peer: found by DNS (static ones never retire)
    uint64_t dns_generation_ = 0;           // the snapshot generation applied
    RoutesEndpoint routes_{*this};
    bool grow_due_ = false;
    bool draining_ = false;
};

}  // namespace ferry::role
