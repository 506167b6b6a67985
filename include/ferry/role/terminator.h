// Terminator (cluster B sink), one per shard: accepts tunnel connections on --listen-tunnel
// (SO_REUSEPORT spreads them over shards) and opens one upstream TCP connection per stream to
// --upstream. A rogue or broken peer loses only its own connection, with the reason logged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/io/socket.h"
#include "ferry/role/tunnel_endpoint.h"

namespace ferry::role {

struct TerminatorConfig {
    io::SocketAddress listen_tunnel;
    io::SocketAddress upstream;
    uint32_t max_connections = 0;  // upstream connections on this shard; 0 = unlimited
    uint32_t max_tunnels = 1024;   // tunnel connections on this shard
    std::string node_name;
    TunnelSecurity security;
};

class Terminator final : public TunnelEndpoint {
  public:
    Terminator(tunnel::Context& ctx, TerminatorConfig config) noexcept;

    [[nodiscard]] bool start() noexcept override;
    void drain() noexcept override;
    [[nodiscard]] bool idle() const noexcept override;
    void tick(uint64_t now_ns) noexcept override;

  private:
    void on_accepted(int fd) noexcept override;
    void on_session_ready(tunnel::Session& session) noexcept override;
    tunnel::StreamHandler* on_stream_open(tunnel::Session& session, tunnel::Stream& stream,
                                          const proto::tunnel::Open& open) noexcept override;
    void on_session_draining(tunnel::Session& session) noexcept override;
    void on_session_closed(tunnel::Session& session) noexcept override;
    void on_session_rotation_due(tunnel::Session& session, const char* why) noexcept override;

    TerminatorConfig config_;
    bool draining_ = false;
};

}  // namespace ferry::role
