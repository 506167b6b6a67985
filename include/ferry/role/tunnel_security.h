// How a role's tunnel connections are protected: plain TCP (tests, benchmarks, trusted networks)
// or mutual TLS 1.3 with kTLS offload and key rotation (the default), optionally carried inside
// a WebSocket or a gRPC stream (user-space TLS records then) for networks that pass only HTTP or
// only gRPC / HTTP/2.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ferry/loop/context.h"
#include "ferry/tls/tls_context.h"
#include "ferry/transport/grpc_transport.h"
#include "ferry/transport/metrics.h"
#include "ferry/transport/tls_transport.h"
#include "ferry/transport/transport.h"
#include "ferry/transport/ws_transport.h"

namespace ferry::role {

struct TunnelSecurity {
    bool tls = true;
    bool ws = false;  // TLS inside one WebSocket per tunnel connection (--tunnel-transport=ws)
    transport::WsOptions ws_options;
    bool grpc =
        false;  // TLS inside one gRPC stream per tunnel connection (--tunnel-transport=grpc)
    transport::GrpcOptions grpc_options;
    tls::TlsConfig tls_config;
    transport::TlsOptions tls_options;
    uint64_t reload_check_ns = 5'000'000'000;  // how often certificate files are checked
};

// A shard's TLS state: its own SSL_CTX (so a reload never races another thread), re-read when
// the certificate, key or CA file changes on disk (a rotated Kubernetes Secret).
class ShardTls final {
  public:
    [[nodiscard]] static absl::StatusOr<std::unique_ptr<ShardTls>> create(
        const TunnelSecurity& sec);

    // The transport stack for a freshly connected or accepted tunnel socket `fd` (owned by it):
    // TCP, with TLS on top unless the tunnel is plain, and WebSocket framing between them for a
    // ws tunnel.
    [[nodiscard]] std::unique_ptr<transport::Transport> make_transport(loop::Context& ctx,
                                                                       transport::Metrics& metrics,
                                                                       int fd) const;
    // The newest TLS context (TLS only).
    [[nodiscard]] const tls::TlsContext& context() const noexcept { return *ctx_; }
    // Reloads the certificates if their files changed since the last look; logs the outcome.
    void maybe_reload(uint64_t now_ns) noexcept;
    // Reloads the certificates now, changed or not (SIGHUP); logs the outcome.
    void reload_now() noexcept;

  private:
    explicit ShardTls(const TunnelSecurity& sec) : sec_(sec) {}
    [[nodiscard]] int64_t files_stamp() const noexcept;
    void reload(const char* why) noexcept;

    TunnelSecurity sec_;
    std::unique_ptr<tls::TlsContext> ctx_;
    int64_t stamp_ = 0;
    uint64_t next_check_ns_ = 0;
};

}  // namespace ferry::role
