#include "ferry/role/tunnel_endpoint.h"

#include <algorithm>

#include "ferry/base/log.h"

namespace ferry::role {

TunnelEndpoint::TunnelEndpoint(tunnel::Context& ctx, const TunnelSecurity& security,
                               const char* name) noexcept
    : ctx_(ctx), acceptor_(ctx.ring, this), name_(name), security_(security) {}

TunnelEndpoint::~TunnelEndpoint() {
    for (auto& s : sessions_) {
        s->abort("shutting down");
    }
}

bool TunnelEndpoint::init_tls() noexcept {
    absl::StatusOr<std::unique_ptr<ShardTls>> tls = ShardTls::create(security_);
    if (!tls.ok()) {
        FERRY_LOG(Error, "%s: %s", name_, tls.status().message());
        return false;
    }
    tls_ = std::move(*tls);
    return true;
}

tunnel::Session* TunnelEndpoint::add_session(int fd, tunnel::Session::Role role,
                                             const std::string& node_name) {
    auto session = std::make_unique<tunnel::Session>(ctx_, static_cast<tunnel::SessionOwner*>(this),
                                                     tls_->make_link(ctx_, fd), role, node_name);
    tunnel::Session* s = session.get();
    sessions_.push_back(std::move(session));
    s->start();
    return s;
}

void TunnelEndpoint::retire_session(tunnel::Session& session) noexcept {
    auto it = std::find_if(sessions_.begin(), sessions_.end(),
                           [&](const auto& p) { return p.get() == &session; });
    if (it != sessions_.end()) {
        closed_.push_back(std::move(*it));
        sessions_.erase(it);
    }
}

void TunnelEndpoint::tick_sessions(uint64_t now_ns) noexcept {
    tls_->maybe_reload(now_ns);
    for (auto& s : sessions_) {
        s->tick(now_ns);
    }
}

void TunnelEndpoint::dump() const noexcept {
    FERRY_LOG(Info, "%s: %zu tunnel connection(s), %zu local connection(s)", name_,
              sessions_.size(), legs_.live());
    for (const auto& s : sessions_) {
        s->dump();
    }
}

}  // namespace ferry::role
