// TunnelEndpoint: what both roles share on a shard — the loop, the counters, the TLS state, the
// pool of TCP legs, and the making and retiring of tunnel sessions. Initiator and Terminator
// hold one each and add only what differs: who dials and who listens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/base/object_pool.h"
#include "ferry/loop/context.h"
#include "ferry/role/metrics.h"
#include "ferry/role/tcp_leg.h"
#include "ferry/role/tunnel_security.h"
#include "ferry/tunnel/session.h"
#include "ferry/tunnel/tuning.h"

namespace ferry::role {

class TunnelEndpoint final {
  public:
    // `ctx`, `metrics` and `tuning` outlive the endpoint. `role_name` is static text for logs.
    TunnelEndpoint(loop::Context& ctx, ShardMetrics& metrics, const tunnel::Tuning& tuning,
                   TunnelSecurity security, std::string node_name, const char* role_name) noexcept;
    ~TunnelEndpoint();
    TunnelEndpoint(const TunnelEndpoint&) = delete;
    TunnelEndpoint& operator=(const TunnelEndpoint&) = delete;

    // Creates the shard's TLS state; false (logged) when the certificates cannot be loaded.
    [[nodiscard]] bool init_tls() noexcept;
    // A session over the connected tunnel socket `fd` (owned by its transport), started, with
    // `owner` hearing its events. The caller keeps it until on_session_closed, then retire()s it.
    [[nodiscard]] std::unique_ptr<tunnel::Session> start_session(int fd,
                                                                 tunnel::SessionOwner* owner,
                                                                 tunnel::Session::Role role);
    // Frees a closed session once the loop iteration is over (housekeeping()).
    void retire(std::unique_ptr<tunnel::Session> session) noexcept;
    // End of each loop iteration: free what was retired.
    void housekeeping() noexcept { closed_.clear(); }
    // Periodic work: re-reads changed certificate files.
    void tick(uint64_t now_ns) noexcept;
    // SIGHUP: re-reads the certificates now.
    void reload() noexcept;

    [[nodiscard]] loop::Context& ctx() const noexcept { return ctx_; }
    [[nodiscard]] ShardMetrics& metrics() const noexcept { return metrics_; }
    [[nodiscard]] Metrics& role_metrics() const noexcept { return metrics_.role; }
    [[nodiscard]] base::ObjectPool<TcpLeg>& legs() noexcept { return legs_; }
    [[nodiscard]] const std::string& node_name() const noexcept { return node_name_; }
    [[nodiscard]] const char* role_name() const noexcept { return role_name_; }

  private:
    loop::Context& ctx_;
    ShardMetrics& metrics_;
    tunnel::SessionEnv session_env_;
    TunnelSecurity security_;
    std::string node_name_;
    const char* role_name_;
    std::unique_ptr<ShardTls> tls_;
    base::ObjectPool<TcpLeg> legs_;
    std::vector<std::unique_ptr<tunnel::Session>> closed_;
};

}  // namespace ferry::role
