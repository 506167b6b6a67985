// Terminator (cluster B sink), one per shard: accepts tunnel connections on --listen-tunnel
// (SO_REUSEPORT spreads them over shards) and opens one upstream TCP connection per stream to
// --upstream. A rogue or broken peer loses only its own connection, with the reason logged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/base/object_pool.h"
#include "ferry/io/acceptor.h"
#include "ferry/io/socket.h"
#include "ferry/role/tcp_leg.h"
#include "ferry/role/tunnel_security.h"
#include "ferry/shard/service.h"
#include "ferry/tunnel/session.h"

namespace ferry::role {

struct TerminatorConfig {
    io::SocketAddress listen_tunnel;
    io::SocketAddress upstream;
    uint32_t max_connections = 0;  // upstream connections on this shard; 0 = unlimited
    uint32_t max_tunnels = 1024;   // tunnel connections on this shard
    std::string node_name;
    TunnelSecurity security;
};

class Terminator final : public shard::Service,
                         private tunnel::SessionOwner,
                         private io::AcceptHandler {
public:
    Terminator(tunnel::Context& ctx, TerminatorConfig config) noexcept;
    ~Terminator() override;

    [[nodiscard]] bool start() noexcept override;
    void drain() noexcept override;
    [[nodiscard]] bool idle() const noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void housekeeping() noexcept override;
    void dump() const noexcept override;

private:
    void on_accepted(int fd) noexcept override;
    void on_session_ready(tunnel::Session& session) noexcept override;
    tunnel::StreamHandler* on_stream_open(tunnel::Session& session, tunnel::Stream& stream,
                                          const proto::tunnel::Open& open) noexcept override;
    void on_session_draining(tunnel::Session& session) noexcept override;
    void on_session_closed(tunnel::Session& session) noexcept override;
    void on_session_rotation_due(tunnel::Session& session, const char* why) noexcept override;

    tunnel::Context& ctx_;
    TerminatorConfig config_;
    io::Acceptor acceptor_;
    base::ObjectPool<TcpLeg> legs_;
    std::vector<std::unique_ptr<tunnel::Session>> sessions_;
    std::vector<std::unique_ptr<tunnel::Session>> closed_;
    bool draining_ = false;
    std::unique_ptr<ShardTls> tls_;
};

}  // namespace ferry::role
