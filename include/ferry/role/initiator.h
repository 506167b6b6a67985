// Initiator (cluster A gateway), one per shard: accepts TCP clients on --listen and carries each
// as a stream over this shard's persistent tunnel connection to --peer, reconnecting with
// exponential backoff and jitter. When the terminator drains (GOAWAY), a new tunnel connection
// is made before the old one finishes (make-before-break).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/io/socket.h"
#include "ferry/role/tunnel_endpoint.h"

namespace ferry::role {

struct InitiatorConfig {
    io::SocketAddress listen;
    io::SocketAddress peer;
    uint32_t max_connections = 0;  // this shard's share of --max-connections
    std::string node_name;
    uint64_t seed = 1;  // backoff jitter
    TunnelSecurity security;
    uint32_t max_pending = 4096;  // clients held while a tunnel connection is being (re)made
};

class Initiator final : public TunnelEndpoint {
  public:
    Initiator(tunnel::Context& ctx, InitiatorConfig config) noexcept;
    ~Initiator() override;

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

    void connect_tunnel() noexcept;
    void on_connect(int32_t res, uint32_t flags) noexcept;
    void on_connect_timeout(int32_t, uint32_t) noexcept { --connect_ops_; }
    void schedule_reconnect() noexcept;
    void update_ready() noexcept;
    void open_stream_for(int fd) noexcept;
    void flush_pending() noexcept;

    InitiatorConfig config_;
    tunnel::Session* active_ = nullptr;  // where new streams go
    // Accepted clients waiting for a usable tunnel connection (at start, during a rotation
    // handover or a reconnect), with their accept time; bounded and timed out.
    struct PendingClient {
        int fd;
        uint64_t since_ns;
    };
    std::vector<PendingClient> pending_;

    io::MemberOp<Initiator, &Initiator::on_connect> connect_op_{this};
    io::MemberOp<Initiator, &Initiator::on_connect_timeout> timeout_op_{this};
    __kernel_timespec connect_timeout_{};
    int connect_fd_ = -1;
    int connect_ops_ = 0;
    bool connecting_ = false;
    uint32_t failures_ = 0;
    uint64_t reconnect_at_ns_ = 0;
    bool reconnect_pending_ = false;
    bool draining_ = false;
    uint64_t rng_;
};

}  // namespace ferry::role
