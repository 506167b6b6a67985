#include "ferry/role/ws_protocol.h"

#include <vector>

#include "absl/strings/match.h"

namespace ferry::role {

WsClients::WsClients(loop::Context& ctx, Metrics& metrics, transport::Metrics& transport_metrics,
                     StreamOpener& opener, WsClientOptions options) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      transport_metrics_(transport_metrics),
      opener_(opener),
      options_(std::move(options)) {}

absl::Status WsClients::prepare() noexcept {
    if (!options_.serves_tls || tls_ != nullptr) {
        return absl::OkStatus();
    }
    TunnelSecurity sec;
    sec.tls = true;
    sec.tls_config = options_.listener_tls;
    absl::StatusOr<std::unique_ptr<ShardTls>> tls = ShardTls::create(sec);
    if (!tls.ok()) {
        return tls.status();
    }
    tls_ = *std::move(tls);
    return absl::OkStatus();
}

void WsClients::reload() noexcept {
    if (tls_ != nullptr) {
        tls_->reload_now();
    }
}

WsClients::~WsClients() {
    // Legs with a deadline may still hold their request head; the pool abandons the rest.
    for (WsLeg* leg = deadlines_; leg != nullptr; leg = leg->deadline_next) {
        leg->abandon();
    }
}

void WsClients::drain() noexcept {
    draining_ = true;
    std::vector<WsLeg*> legs;
    for (WsLeg* leg = deadlines_; leg != nullptr; leg = leg->deadline_next) {
        legs.push_back(leg);
    }
    for (WsLeg* leg : legs) {
        leg->on_drain();
    }
}

void WsClients::on_client(int fd, const ServiceUrl& listener) noexcept {
    WsLeg* leg = legs_.create(ctx_, metrics_, &legs_, static_cast<WsLegOwner&>(*this));
    if (draining_) {
        metrics_.connections_rejected.add();
        leg->reject(fd);
        return;
    }
    if (!options_.process->connections.try_acquire()) {
        metrics_.connections_rejected.add();
        FERRY_LOG_LIMITED(refusal_log_, ctx_.now_ns, Warn,
                          "client on %s refused: --max-connections (%u) reached in this process",
                          listener.text, options_.process->connections.max());
        leg->reject(fd);
        return;
    }
    leg->hold_slot(&options_.process->connections);
    const tls::TlsContext* tls = listener.tls() && tls_ != nullptr ? &tls_->context() : nullptr;
    leg->start(fd, listener.path, options_.handshake_ns, tls);
}

void WsClients::log_refusal(const char* what, std::string_view detail) noexcept {
    FERRY_LOG_LIMITED(refusal_log_, ctx_.now_ns, Warn, "%s: %s", what, detail);
}

void WsClients::watch_deadline(WsLeg* leg) noexcept {
    leg->deadline_watched = true;
    leg->deadline_prev = nullptr;
    leg->deadline_next = deadlines_;
    if (deadlines_ != nullptr) {
        deadlines_->deadline_prev = leg;
    }
    deadlines_ = leg;
}

void WsClients::unwatch_deadline(WsLeg* leg) noexcept {
    if (!leg->deadline_watched) {
        return;
    }
    leg->deadline_watched = false;
    if (leg->deadline_prev != nullptr) {
        leg->deadline_prev->deadline_next = leg->deadline_next;
    } else {
        deadlines_ = leg->deadline_next;
    }
    if (leg->deadline_next != nullptr) {
        leg->deadline_next->deadline_prev = leg->deadline_prev;
    }
    leg->deadline_prev = leg->deadline_next = nullptr;
}

bool WsClients::origin_allowed(std::string_view origin) const noexcept {
    // A client that sends no Origin is not a browser (RFC 6455 §10.2): the check is for those.
    if (options_.allowed_origins.empty() || origin.empty()) {
        return true;
    }
    for (const std::string& allowed : options_.allowed_origins) {
        if (absl::EqualsIgnoreCase(allowed, absl::string_view(origin.data(), origin.size()))) {
            return true;
        }
    }
    return false;
}

void WsClients::tick(uint64_t now_ns) noexcept {
    if (tls_ != nullptr) {
        tls_->maybe_reload(now_ns);
    }
    // Collected first: a leg's answer to its deadline may take it off the list or put it back.
    std::vector<WsLeg*> due;
    for (WsLeg* leg = deadlines_; leg != nullptr; leg = leg->deadline_next) {
        if (now_ns >= leg->deadline_ns()) {
            due.push_back(leg);
        }
    }
    for (WsLeg* leg : due) {
        unwatch_deadline(leg);
        leg->on_deadline();
    }
}

}  // namespace ferry::role
