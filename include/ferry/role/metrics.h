// Per-shard counters of a role (initiator or terminator): its local connections and its tunnel
// connections; and ShardMetrics, every counter a shard's services keep, for the admin endpoint.
// Written by the shard, read from any thread (see base::Counter).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "ferry/base/counter.h"
#include "ferry/proto/grpc/status.h"
#include "ferry/transport/metrics.h"
#include "ferry/tunnel/metrics.h"

namespace ferry::role {

// gRPC calls of one side (the initiator's grpc:// listeners, the terminator's built-in sink or
// its grpc:// upstream), counted by the call classes through GrpcCallMeter. Fixed arrays: ending
// a call allocates nothing.
struct GrpcMetrics {
    static constexpr size_t kCodes = 17;  // grpc-status 0..16; other values count as UNKNOWN
    // Upper bounds of the call-duration buckets in microseconds (1 ms .. 60 s); one more cell
    // holds the calls above the last (+Inf).
    static constexpr std::array<uint64_t, 10> kDurationBoundsUs = {
        1'000,   5'000,     10'000,    50'000,     100'000,
        500'000, 1'000'000, 5'000'000, 10'000'000, 60'000'000};
    std::array<base::Counter, kCodes> calls;  // ended calls by their grpc-status
    base::Gauge active;                       // calls started and not ended
    base::Counter messages_in;                // request messages (from the caller's side)
    base::Counter messages_out;               // response messages (towards the caller)
    std::array<base::Counter, kDurationBoundsUs.size() + 1> duration_buckets;  // not cumulative
    base::Counter duration_us;                                                 // their sum
};

// One call's share of GrpcMetrics: active from start() until end(), which counts the call once by
// the status that ended it (later end() calls change nothing). The owner calls end() from its
// destructor too, so a call torn down without a status counts as CANCELLED.
class GrpcCallMeter final {
  public:
    void start(GrpcMetrics& metrics, uint64_t now_ns) noexcept {
        if (metrics_ == nullptr) {
            metrics_ = &metrics;
            start_ns_ = now_ns;
            metrics.active.add(1);
        }
    }
    void end(proto::grpc::StatusCode code, uint64_t now_ns) noexcept;
    [[nodiscard]] bool counting() const noexcept { return metrics_ != nullptr; }
    // Message counts of a started call (none before start()).
    void message_in() noexcept {
        if (metrics_ != nullptr) {
            metrics_->messages_in.add();
        }
    }
    void message_out() noexcept {
        if (metrics_ != nullptr) {
            metrics_->messages_out.add();
        }
    }

  private:
    GrpcMetrics* metrics_ = nullptr;  // null: not started, or ended
    uint64_t start_ns_ = 0;
};

struct Metrics {
    // 1 once this shard's service can carry traffic (/ready).
    base::Gauge ready;
    // Local sockets (clients at the initiator, upstreams at the terminator).
    base::Counter connections_accepted;
    base::Counter connections_rejected;  // over --max-connections or no tunnel
    base::Gauge connections_active;
    base::Counter upstream_connect_errors;
    base::Counter bytes_from_local;
    base::Counter bytes_to_local;
    base::Counter flow_paused;  // times a local reader was paused for lack of credit
    // Tunnel connections.
    base::Gauge tunnel_up;  // established (usable) tunnel connections on this shard
    base::Counter tunnel_connects;
    base::Counter tunnel_connect_failures;  // connects, handshakes or HELLOs that failed
    base::Counter tunnel_disconnects;       // established tunnel connections closed
    // Before authentication (TLS handshake and HELLO not both done).
    base::Gauge tunnel_pending;
    base::Counter handshake_timeouts;  // closed for taking longer than --handshake-timeout
    base::Counter pending_evicted;     // closed to make room for a newer one (budget full)
    base::Counter tunnels_refused;     // established-tunnel limit reached
    // Placement (terminator): accepted here and handed to another shard, or handed in.
    base::Counter tunnel_handoffs_out;
    base::Counter tunnel_handoffs_in;
    // Upstream connects (terminator).
    base::Gauge upstream_connects_in_flight;
    base::Counter upstream_connects_refused;  // too many in flight (per tunnel or process)
    // gRPC calls by side: the initiator counts grpc_listener, the terminator grpc_sink and
    // grpc_upstream.
    GrpcMetrics grpc_listener;
    GrpcMetrics grpc_sink;
    GrpcMetrics grpc_upstream;
};

// One terminator of an initiator's --peer set, on one shard.
struct PeerMetrics {
    explicit PeerMetrics(std::string peer_id) : id(std::move(peer_id)) {}
    const std::string id;         // IP:port, the peer's id in the rendezvous set
    base::Counter streams;        // streams opened towards it
    base::Gauge streams_open;     // streams open on its connections (updated each tick)
    base::Gauge up;               // its usable tunnel connections
    tunnel::PeerCounters tunnel;  // bytes each way and the latest RTT over its connections
};

// Everything a shard's services count, by module.
struct ShardMetrics {
    Metrics role;
    tunnel::Metrics tunnel;
    transport::Metrics transport;
    // TLS towards clients (wss:// listeners): handshakes and kTLS; their bytes are local bytes.
    transport::Metrics client_transport;
    // Initiator: one per --peer, in --peer order. Filled before the shards start (main) or by
    // the initiator's constructor when empty; peers found by DNS are appended later by the
    // shard, under peers_mu, which the admin port holds while it reads (entries never move, so
    // their counters are written without it).
    std::deque<PeerMetrics> peers;
    mutable std::mutex peers_mu;
};

}  // namespace ferry::role
