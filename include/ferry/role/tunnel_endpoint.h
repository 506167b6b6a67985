// TunnelEndpoint: what both roles share — their tunnel sessions (owned here, retired at the end
// of the loop iteration that closed them), the TCP legs of their streams, the shard's TLS state
// and an acceptor. Initiator and Terminator add only what differs: who dials and who listens.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ferry/base/object_pool.h"
#include "ferry/io/acceptor.h"
#include "ferry/role/tcp_leg.h"
#include "ferry/role/tunnel_security.h"
#include "ferry/shard/service.h"
#include "ferry/tunnel/session.h"

namespace ferry::role {

class TunnelEndpoint : public shard::Service,
                       protected tunnel::SessionOwner,
                       protected io::AcceptHandler {
  public:
    ~TunnelEndpoint() override;

    void housekeeping() noexcept override { closed_.clear(); }
    void dump() const noexcept override;

  protected:
    TunnelEndpoint(tunnel::Context& ctx, const TunnelSecurity& security, const char* name) noexcept;

    // Creates the shard's TLS state; false (logged) when the certificates cannot be loaded.
    [[nodiscard]] bool init_tls() noexcept;
    // A new session over the connected socket `fd`, started and owned here.
    tunnel::Session* add_session(int fd, tunnel::Session::Role role, const std::string& node_name);
    // Moves a closed session to the retire list (it is freed in housekeeping()).
    void retire_session(tunnel::Session& session) noexcept;
    // Ticks every session and checks the certificate files.
    void tick_sessions(uint64_t now_ns) noexcept;

    tunnel::Context& ctx_;
    io::Acceptor acceptor_;
    base::ObjectPool<TcpLeg> legs_;
    std::vector<std::unique_ptr<tunnel::Session>> sessions_;

  private:
    const char* name_;
    TunnelSecurity security_;
    std::unique_ptr<ShardTls> tls_;
    std::vector<std::unique_ptr<tunnel::Session>> closed_;
};

}  // namespace ferry::role
