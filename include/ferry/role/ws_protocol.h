// The WebSocket protocol handler of the initiator: each client on a ws:// listener becomes a
// WsLeg, which reads its Upgrade request, opens a WebSocket stream and carries its messages.
// Deadlines (handshake, OPEN_ACK, closing) are kept here and checked on tick.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ferry/base/log.h"
#include "ferry/base/object_pool.h"
#include "ferry/loop/context.h"
#include "ferry/role/limits.h"
#include "ferry/role/metrics.h"
#include "ferry/role/protocol.h"
#include "ferry/role/tunnel_security.h"
#include "ferry/role/ws_leg.h"

namespace ferry::role {

struct WsClientOptions {
    ProcessLimits* process = nullptr;                // --max-connections, shared by every shard
    uint64_t max_message_size = uint64_t{16} << 20;  // --ws-max-message
    uint64_t handshake_ns = 5'000'000'000;           // a whole Upgrade request within this
    std::string node_name;                           // this node's entry in the OPEN's "trail"
    RouteKeyRule route_key;                          // --route-key
    std::vector<std::string> allowed_origins;        // empty: any Origin (or none)
    uint64_t ping_interval_ns = 0;                   // Ping an open connection this often
    uint64_t idle_timeout_ns = 0;                    // close one that sends nothing this long
    // wss:// listeners: the certificate shown to clients (no client certificate asked for).
    bool serves_tls = false;
    tls::TlsConfig listener_tls;
};

class WsClients final : public ClientProtocol, private WsLegOwner {
  public:
    // Everything referenced outlives the handler.
    WsClients(loop::Context& ctx, Metrics& metrics, transport::Metrics& transport_metrics,
              StreamOpener& opener, WsClientOptions options) noexcept;
    ~WsClients() override;

    void on_client(int fd, const ServiceUrl& listener) noexcept override;
    [[nodiscard]] absl::Status prepare() noexcept override;
    void reload() noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void drain() noexcept override;
    // Legs still in their handshake or closing linger are bounded by their deadlines.
    [[nodiscard]] bool idle() const noexcept override { return deadlines_ == nullptr; }

  private:
    // WsLegOwner
    StreamOpener& opener() noexcept override { return opener_; }
    transport::Metrics& transport_metrics() noexcept override { return transport_metrics_; }
    uint64_t max_message_size() const noexcept override { return options_.max_message_size; }
    const std::string& node_name() const noexcept override { return options_.node_name; }
    const RouteKeyRule& route_key_rule() const noexcept override { return options_.route_key; }
    bool origin_allowed(std::string_view origin) const noexcept override;
    uint64_t ping_interval_ns() const noexcept override { return options_.ping_interval_ns; }
    uint64_t idle_timeout_ns() const noexcept override { return options_.idle_timeout_ns; }
    bool draining() const noexcept override { return draining_; }
    void log_refusal(const char* what, std::string_view detail) noexcept override;
    void watch_deadline(WsLeg* leg) noexcept override;
    void unwatch_deadline(WsLeg* leg) noexcept override;

    // First, so it is destroyed last: legs still open at shard exit are abandoned with it.
    base::ObjectPool<WsLeg> legs_;
    loop::Context& ctx_;
    Metrics& metrics_;
    transport::Metrics& transport_metrics_;
    StreamOpener& opener_;
    // wss:// listeners: this shard's TLS context, re-read when its files change.
    std::unique_ptr<ShardTls> tls_;
    WsClientOptions options_;
    base::LogLimiter refusal_log_;
    WsLeg* deadlines_ = nullptr;  // legs with a deadline (intrusive list)
    bool draining_ = false;
};

}  // namespace ferry::role
