// Terminator (cluster B sink), one per shard: accepts tunnel connections on --listen-tunnel
// (SO_REUSEPORT spreads them over shards) and serves each stream the peer opens with the handler
// of its protocol (an upstream per --upstream; a protocol with none is refused with RESET
// UnsupportedProtocol). A rogue or broken peer loses only its own connection, with the reason
// logged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/io/acceptor.h"
#include "ferry/io/socket.h"
#include "ferry/role/protocol.h"
#include "ferry/role/tunnel_endpoint.h"
#include "ferry/shard/service.h"

namespace ferry::role {

struct TerminatorConfig {
    io::SocketAddress listen_tunnel;
    std::vector<ServiceUrl> upstreams;  // at most one per protocol
    uint32_t max_connections = 0;       // upstream connections on this shard; 0 = unlimited
    uint32_t max_tunnels = 1024;        // tunnel connections on this shard
    std::string node_name;
    TunnelSecurity security;
    tunnel::Tuning tuning;
};

class Terminator final : public shard::Service,
                         private io::AcceptHandler,
                         private tunnel::SessionOwner {
  public:
    // `ctx` and `metrics` outlive the terminator.
    Terminator(loop::Context& ctx, ShardMetrics& metrics, TerminatorConfig config) noexcept;
    ~Terminator() override;

    [[nodiscard]] bool start() noexcept override;
    void drain() noexcept override;
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
    void on_accepted(int fd) noexcept override { adopt_tunnel_connection(fd); }
    void on_session_ready(tunnel::Session& session) noexcept override;
    tunnel::OpenDecision on_stream_open(tunnel::Session& session, tunnel::Stream& stream,
                                        const proto::tunnel::Open& open) noexcept override;
    void on_session_draining(tunnel::Session&) noexcept override {}
    void on_session_closed(tunnel::Session& session) noexcept override;
    void on_session_rotation_due(tunnel::Session& session, const char* why) noexcept override;

    TerminatorConfig config_;
    TunnelEndpoint endpoint_;
    io::Acceptor acceptor_;
    ProtocolRegistry<UpstreamProtocol> upstreams_;
    std::vector<std::unique_ptr<tunnel::Session>> sessions_;
    bool draining_ = false;
};

}  // namespace ferry::role
