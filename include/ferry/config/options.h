// Options: the validated run-time configuration of one ferry process, built from CLI flags.
// Validation lives here (not in flag parsing) so it is unit-tested and every error is one line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/base/log.h"
#include "ferry/discovery/dns_peers.h"
#include "ferry/io/socket.h"
#include "ferry/proto/tunnel/frame.h"
#include "ferry/role/protocol.h"
#include "ferry/role/route_key.h"
#include "ferry/role/tunnel_placement.h"
#include "ferry/role/tunnel_security.h"
#include "ferry/shard/runtime.h"
#include "ferry/tunnel/tuning.h"

namespace ferry::config {

enum class Role : uint8_t { Initiator, Terminator };

// Raw values as the user gave them (flags), before validation.
struct RawOptions {
    std::string role;
    int shards = 0;
    std::string cpus;  // "auto", "none" or a list like "0,2-3"
    uint32_t ring_entries = 4096;
    bool sqpoll = false;
    // Byte counts (flags take units: 64KiB, 1MiB); validate() checks their ranges.
    uint64_t buffer_size = 65536;
    uint32_t buffer_count = 512;
    uint32_t tunnel_buffer_count = 1024;
    uint64_t zerocopy_threshold = 65536;
    uint64_t max_frame_size = 65536;
    uint64_t ws_max_message = uint64_t{16} << 20;   // largest WebSocket message, either role
    uint64_t grpc_max_message = uint64_t{4} << 20;  // largest gRPC message, either role
    absl::Duration ws_ping_interval = absl::ZeroDuration();  // initiator keepalive; 0 = off
    absl::Duration ws_idle_timeout = absl::ZeroDuration();   // initiator; 0 = off
    std::string ws_allowed_origins;                          // comma-separated; empty = any
    uint64_t stream_window = 256 * 1024;
    uint64_t connection_window = 16 * 1024 * 1024;
    uint32_t max_connections = 65536;
    uint32_t max_streams = 16384;
    uint32_t max_tunnels = 1024;         // established tunnel connections per shard
    uint32_t max_pending_tunnels = 256;  // tunnel connections before their handshake, per shard
    std::string tunnel_placement = "balanced";       // balanced, kernel or rotate
    std::string tunnels_per_peer = "auto";           // initiator: auto or 1..64 per shard
    std::string route_key = "header:X-Routing-Key";  // initiator: header:N, query:N, client-address
    uint32_t auto_trigger = 5;     // initiator: messages sent once the tunnel is up
    std::string blueprint = "ws";  // initiator: what a trigger is, ws or grpc
    std::string hooks;             // a hooks library (include/ferry/hooks.h), empty = none
    absl::Duration trigger_timeout = absl::Seconds(10);
    uint32_t max_upstream_connects = 1024;            // in flight, per process
    uint32_t max_upstream_connects_per_tunnel = 256;  // in flight, per tunnel connection
    absl::Duration handshake_timeout = absl::Seconds(10);
    absl::Duration admin_timeout = absl::Seconds(5);
    std::string log_level_file;
    absl::Duration connect_timeout = absl::Seconds(5);
    absl::Duration drain_timeout = absl::Seconds(10);
    absl::Duration ping_interval = absl::Seconds(10);
    absl::Duration ping_timeout = absl::Seconds(30);
    int64_t peer_failure_threshold = 3;
    std::string log_level = "info";
    std::string log_format = "text";
    std::vector<std::string> listen;        // repeatable: HOST:PORT or a tcp:// ws:// ... URL
    std::vector<std::string> peer;          // repeatable: HOST:PORT
    std::vector<std::string> peer_weights;  // ADDR=WEIGHT entries
    std::string peer_dns;                   // NAME:PORT
    absl::Duration dns_refresh = absl::Seconds(30);
    std::string dns_server;                     // IP[:PORT],... or empty: resolv.conf
    std::vector<std::string> upstream_weights;  // ADDR=WEIGHT entries
    std::string listen_tunnel;
    std::vector<std::string> upstream;  // repeatable, one per protocol
    std::string admin;
    std::string node_name;
    std::string tunnel_transport = "tls";
    std::string tunnel_ws_path = "/ferry/tunnel";  // --tunnel-transport=ws: the Upgrade's path
    // --tunnel-transport=grpc: the call's :path
    std::string tunnel_grpc_path = "/ferry.tunnel.v1.Tunnel/Carry";
    std::string listen_tls_cert;  // initiator: the certificate of wss:// listeners
    std::string listen_tls_key;
    std::string upstream_tls_ca;  // terminator: the CA of a grpcs:// upstream (empty: the system's)
    std::string tls_cert;
    std::string tls_key;
    std::string tls_ca;
    std::string peer_name = "ferry-terminator";
    std::string allowed_peers;  // comma-separated identities, empty = any the CA signed
    std::string tls_ciphers;
    std::string ktls = "auto";
    uint64_t rekey_bytes = 1ULL << 30;
    absl::Duration rekey_interval = absl::Minutes(10);
};

struct Options {
    Role role = Role::Initiator;
    shard::RuntimeOptions runtime;
    std::vector<role::ServiceUrl> listen;  // initiator
    std::vector<io::SocketAddress> peers;  // initiator, distinct
    std::vector<double> peer_weights;      // one per peer (1 unless --peer-weights says)
    bool has_peer_dns = false;             // --peer-dns: peers from DNS too
    discovery::ResolverOptions peer_dns;
    role::RouteKeyRule route_key;             // initiator
    io::SocketAddress listen_tunnel;          // terminator
    std::vector<role::ServiceUrl> upstreams;  // terminator, at most one per protocol
    tunnel::Tuning tuning;
    bool has_admin = false;
    io::SocketAddress admin;
    uint32_t max_connections = 0;  // per process
    uint64_t ws_max_message = uint64_t{16} << 20;
    uint32_t grpc_max_message = uint32_t{4} << 20;
    uint64_t ws_ping_interval_ns = 0;
    uint64_t ws_idle_timeout_ns = 0;
    std::vector<std::string> ws_allowed_origins;
    uint32_t max_tunnels = 1024;
    uint32_t max_pending_tunnels = 256;
    role::TunnelPlacementPolicy tunnel_placement = role::TunnelPlacementPolicy::Balanced;
    uint32_t tunnels_per_peer = 0;  // 0 = auto
    uint32_t auto_trigger = 5;
    // What a trigger is: one WebSocket message (ws) or a lane7 Send call (grpc).
    proto::tunnel::StreamProtocol trigger_protocol = proto::tunnel::StreamProtocol::WebSocket;
    std::string hooks;  // path of the hooks library, loaded by main before the shards start
    uint64_t trigger_timeout_ns = 10'000'000'000;
    uint32_t max_upstream_connects = 1024;
    uint32_t max_upstream_connects_per_tunnel = 256;
    uint64_t handshake_timeout_ns = 10'000'000'000;
    uint64_t admin_timeout_ns = 5'000'000'000;
    std::string log_level_file;  // re-read on SIGHUP (empty: the level stays --log-level)
    base::LogFormat log_format = base::LogFormat::Text;
    std::string node_name;
    role::TunnelSecurity security;
    std::optional<tls::TlsConfig> listener_tls;  // initiator with a wss:// listener
    std::optional<tls::TlsConfig> upstream_tls;  // terminator with a grpcs:// upstream
};

// Whether the kernel offers kTLS (injected so tests need no kernel support).
using KtlsProbe = bool (*)();

// Checks every value and resolves addresses; the error names the flag and what is wrong.
// `allowed_cpus` is the process's affinity mask (injected for tests).
[[nodiscard]] absl::StatusOr<Options> validate(const RawOptions& raw,
                                               const std::vector<int>& allowed_cpus,
                                               KtlsProbe ktls_available = nullptr);

// A --listen or --upstream value: "HOST:PORT" (TCP) or a URL tcp://, ws://HOST[:PORT][/PATH],
// wss://, grpc://, grpcs://; ws ports default to 80 and wss to 443, other schemes need one.
// `flag` names the flag in errors. Resolves the host once.
[[nodiscard]] absl::StatusOr<role::ServiceUrl> parse_service_url(std::string_view flag,
                                                                 std::string_view text);

// "0,2-3" -> {0,2,3}; error on syntax, duplicates or CPUs outside `allowed`.
[[nodiscard]] absl::StatusOr<std::vector<int>> parse_cpu_list(std::string_view text,
                                                              const std::vector<int>& allowed);

// The CPUs this process may run on (sched_getaffinity).
[[nodiscard]] std::vector<int> affinity_cpus();

// The log level named in `path` (one word, surrounding whitespace ignored), for SIGHUP.
[[nodiscard]] absl::StatusOr<base::LogLevel> read_log_level_file(const std::string& path);

// POD_NAME, else the host name.
[[nodiscard]] std::string default_node_name();

}  // namespace ferry::config
