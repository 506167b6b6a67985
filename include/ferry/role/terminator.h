// Terminator (cluster B sink), one per shard: accepts tunnel connections on --listen-tunnel
// (SO_REUSEPORT, then TunnelPlacement hands each to the shard with the fewest) and serves each
// stream the peer opens with the handler of its protocol (an upstream per --upstream; a protocol
// with none is refused with RESET UnsupportedProtocol). A rogue or broken peer loses only its own
// connection, with the reason logged.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/base/log.h"
#include "ferry/io/acceptor.h"
#include "ferry/io/socket.h"
#include "ferry/role/hooks.h"
#include "ferry/role/limits.h"
#include "ferry/role/protocol.h"
#include "ferry/role/result_log.h"
#include "ferry/role/tunnel_endpoint.h"
#include "ferry/role/tunnel_placement.h"
#include "ferry/shard/service.h"
#include "ferry/tls/tls_context.h"

namespace ferry::role {

struct TerminatorConfig {
    io::SocketAddress listen_tunnel;
    std::vector<ServiceUrl> upstreams;  // at most one per protocol
    uint32_t max_tunnels = 1024;        // established tunnel connections on this shard
    // Connections whose TLS handshake and HELLO are not both done, on this shard: a budget of
    // their own (never counted against max_tunnels); when full, the oldest is evicted.
    uint32_t max_pending = 256;
    uint64_t handshake_timeout_ns = 10'000'000'000;
    uint32_t max_upstream_connects_per_tunnel = 256;  // upstream connects in flight per tunnel
    std::string node_name;
    uint64_t ws_max_message = uint64_t{16} << 20;   // largest WebSocket message the sink takes
    uint32_t grpc_max_message = uint32_t{4} << 20;  // largest gRPC message the sink takes
    std::optional<tls::TlsConfig> upstream_tls;     // a grpcs:// upstream's client TLS
    TunnelSecurity security;
    tunnel::Tuning tuning;
    // Shared by every shard's terminator; nullptr serves each connection where it was accepted.
    TunnelPlacement* placement = nullptr;
    ResultLog* results = nullptr;         // the sink's answers, for GET /output (may be null)
    const HooksLibrary* hooks = nullptr;  // --hooks, for the sink (may be null)
    size_t shard_index = 0;
};

class Terminator final : public shard::Service,
                         private io::AcceptHandler,
                         private HandoffReceiver,
                         private tunnel::SessionOwner {
  public:
    // `ctx`, `metrics` and `limits` (shared by every shard) outlive the terminator.
    Terminator(loop::Context& ctx, ShardMetrics& metrics, ProcessLimits& limits,
               TerminatorConfig config) noexcept;
    ~Terminator() override;

    [[nodiscard]] bool start() noexcept override;
    void drain() noexcept override;
    void stop() noexcept override;
    void reload() noexcept override { endpoint_.reload(); }
    [[nodiscard]] bool idle() const noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void housekeeping() noexcept override { endpoint_.housekeeping(); }
    void dump() const noexcept override;

    // Serves an accepted tunnel connection `fd` (what the listener does with each; tests hand
    // in one end of a socket pair).
    void adopt_tunnel_connection(int fd) noexcept;
    // Opens the TLS state only, without listening (tests that adopt connections).
    [[nodiscard]] bool start_without_listener() noexcept;

  private:
    // Loads what the upstreams need before the first stream (a grpcs:// TLS context); false
    // (logged) when one cannot.
    [[nodiscard]] bool prepare_upstreams() noexcept;
    // Places the connection (TunnelPlacement) and serves it here or hands it over.
    void on_accepted(int fd) noexcept override;
    void on_handed_off(int fd) noexcept override;
    // Serves `fd`, already counted on this shard by the placement.
    void serve(int fd) noexcept;
    // One of this shard's tunnel connections is gone.
    void uncount() noexcept;
    void on_session_ready(tunnel::Session& session) noexcept override;
    tunnel::OpenDecision on_stream_open(tunnel::Session& session, tunnel::Stream& stream,
                                        const proto::tunnel::Open& open) noexcept override;
    void on_session_draining(tunnel::Session&) noexcept override {}
    void on_session_closed(tunnel::Session& session) noexcept override;
    void on_session_rotation_due(tunnel::Session& session, const char* why) noexcept override;

    // One accepted tunnel connection: its session, when it came, who it came from, and whether
    // it got through its handshake and HELLO.
    struct TunnelConnection {
        std::unique_ptr<tunnel::Session> session;
        uint64_t accepted_ns = 0;
        std::string peer;  // the remote address, for logs
        bool established = false;
        bool closing = false;  // evicted, timed out or refused: no longer counted
    };
    [[nodiscard]] TunnelConnection* find(const tunnel::Session& session) noexcept;
    // Ends `c` before its HELLO with `reason`; counted in `counter`, logged (rate-limited).
    void close_pending(TunnelConnection& c, const char* reason, base::Counter& counter) noexcept;
    [[nodiscard]] static bool is_pending(const TunnelConnection& c) noexcept;
    // Counts the connections still in their handshake, sets the gauge, returns the count.
    uint32_t update_pending_gauge() noexcept;

    TerminatorConfig config_;
    TunnelEndpoint endpoint_;
    io::Acceptor acceptor_;
    ProtocolRegistry<UpstreamProtocol> upstreams_;
    std::vector<TunnelConnection> connections_;
    uint32_t established_ = 0;
    base::LogLimiter refusal_log_;
    bool draining_ = false;
};

}  // namespace ferry::role
