// Admin HTTP port, served by shard 0's own ring: GET (or HEAD) /health, /ready, /metrics
// (Prometheus text), and the paths a role registers (role::AdminEndpoint: POST /trigger, GET
// /output), which get the request body (Content-Length, at most kMaxAdminBody). Answers are small
// and built per request (the admin port is not the data path); every connection closes after one
// response. A bounded number are served at once; one that does not send its request within the
// timeout is closed, and when the port is full the longest-waiting is closed to make room, so slow
// or idle clients cannot starve the probes. It keeps answering while the process drains (/ready
// then says 503).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ferry/base/object_pool.h"
#include "ferry/io/acceptor.h"
#include "ferry/io/node_check.h"
#include "ferry/io/socket.h"
#include "ferry/loop/context.h"
#include "ferry/role/admin_endpoint.h"
#include "ferry/role/metrics.h"
#include "ferry/shard/service.h"

namespace ferry::admin {

class AdminConnection;

// Largest request body the admin port reads (a trigger message); beyond it: 413.
inline constexpr size_t kMaxAdminBody = 1 << 20;

struct AdminRoute {
    std::string path;
    role::AdminEndpoint* endpoint;  // on shard 0, outlives the server
};

struct AdminConfig {
    io::SocketAddress listen;
    std::string role;  // "initiator" or "terminator", shown in /metrics
    std::string node_name;
    uint32_t max_connections = 64;
    uint64_t timeout_ns = 5'000'000'000;  // to receive a whole request
    // Every shard's counters, by shard index: its loop's and its services' (they outlive the
    // server; written by their shards, read here).
    std::vector<const loop::Metrics*> loop_metrics;
    std::vector<const role::ShardMetrics*> shard_metrics;
    std::vector<AdminRoute> routes;  // paths served by roles, beside the probes
    io::NodeCheck node;              // read at start (io/node_check.h)
    bool ktls_usable = false;
};

class AdminServer final : public shard::Service, private io::AcceptHandler {
  public:
    AdminServer(loop::Context& ctx, AdminConfig config) noexcept;
    ~AdminServer() override;

    [[nodiscard]] bool start() noexcept override;
    void drain() noexcept override;
    [[nodiscard]] bool idle() const noexcept override;
    void tick(uint64_t now_ns) noexcept override;

    // Routes one parsed request; returns the full HTTP response.
    [[nodiscard]] std::string respond(std::string_view method, std::string_view path) const;
    // The endpoint a role registered for `path`, or nullptr.
    [[nodiscard]] role::AdminEndpoint* route(std::string_view path) const noexcept;

  private:
    friend class AdminConnection;
    void on_accepted(int fd) noexcept override;
    void forget(AdminConnection* c) noexcept;

    loop::Context& ctx_;
    AdminConfig config_;
    io::Acceptor acceptor_;
    std::unique_ptr<base::ObjectPool<AdminConnection>> connections_;
    std::vector<AdminConnection*> open_;  // not yet closed
    uint64_t timed_out_ = 0;
    uint64_t evicted_ = 0;
    bool draining_ = false;
};

// The RFC 9110 reason phrase of `status` ("Request Header Fields Too Large" for 431).
[[nodiscard]] const char* reason_phrase(int status) noexcept;

// A whole response that closes the connection.
[[nodiscard]] std::string http_response(int code, std::string_view content_type,
                                        std::string_view body, bool head = false);

// Prometheus text exposition of every shard's metrics: the loop's and the services' (both by
// shard index, the same length).
[[nodiscard]] std::string render_metrics(std::span<const loop::Metrics* const> loop_metrics,
                                         std::span<const role::ShardMetrics* const> shard_metrics,
                                         std::string_view role, std::string_view node_name);
// The node check's facts as gauges, appended to `out`.
void render_node_metrics(const io::NodeCheck& node, bool ktls_usable, std::string* out);

}  // namespace ferry::admin
