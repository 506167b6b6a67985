#include "ferry/role/tunnel_endpoint.h"

#include "ferry/base/log.h"

namespace ferry::role {

TunnelEndpoint::TunnelEndpoint(loop::Context& ctx, ShardMetrics& metrics,
                               const tunnel::Tuning& tuning, TunnelSecurity security,
                               std::string node_name, const char* role_name) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      session_env_{ctx, metrics.tunnel, tuning},
      security_(std::move(security)),
      node_name_(std::move(node_name)),
      role_name_(role_name) {}

TunnelEndpoint::~TunnelEndpoint() = default;

bool TunnelEndpoint::init_tls() noexcept {
    absl::StatusOr<std::unique_ptr<ShardTls>> tls = ShardTls::create(security_);
    if (!tls.ok()) {
        FERRY_LOG(Error, "%s: %s", role_name_, tls.status().message());
        return false;
    }
    tls_ = std::move(*tls);
    return true;
}

std::unique_ptr<tunnel::Session> TunnelEndpoint::start_session(int fd, tunnel::SessionOwner* owner,
                                                               tunnel::Session::Role role) {
    auto session = std::make_unique<tunnel::Session>(
        session_env_, owner, tls_->make_transport(ctx_, metrics_.transport, fd), role, node_name_);
    session->start();
    return session;
}

void TunnelEndpoint::retire(std::unique_ptr<tunnel::Session> session) noexcept {
    closed_.push_back(std::move(session));
}

void TunnelEndpoint::tick(uint64_t now_ns) noexcept { tls_->maybe_reload(now_ns); }

void TunnelEndpoint::reload() noexcept { tls_->reload_now(); }

}  // namespace ferry::role
