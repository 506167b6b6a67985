// The TCP protocol handlers: at the initiator, each accepted client becomes one stream at once
// (there is no head to read; clients are held briefly while no tunnel connection is usable); at
// the terminator, each stream gets one upstream TCP connection, and OPEN_ACK once it connected.
#pragma once

#include <cstdint>
#include <vector>

#include "ferry/base/object_pool.h"
#include "ferry/loop/context.h"
#include "ferry/role/metrics.h"
#include "ferry/role/protocol.h"
#include "ferry/role/tcp_leg.h"

namespace ferry::role {

struct TcpClientLimits {
    uint32_t max_connections = 0;      // local connections on this shard (all protocols); 0 = none
    uint32_t max_pending = 4096;       // clients held while no tunnel connection is usable
    uint64_t hold_ns = 5'000'000'000;  // how long one is held before it gets a clean close
};

class TcpClients final : public ClientProtocol {
  public:
    // Everything referenced outlives the handler.
    TcpClients(loop::Context& ctx, Metrics& metrics, base::ObjectPool<TcpLeg>& legs,
               StreamOpener& opener, const TcpClientLimits& limits) noexcept;
    ~TcpClients() override;

    void on_client(int fd, const ServiceUrl& listener) noexcept override;
    void on_tunnel_usable() noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void drain() noexcept override;
    [[nodiscard]] bool idle() const noexcept override { return pending_.empty(); }

  private:
    void open_stream_for(int fd) noexcept;
    void reject(int fd) noexcept;

    loop::Context& ctx_;
    Metrics& metrics_;
    base::ObjectPool<TcpLeg>& legs_;
    StreamOpener& opener_;
    TcpClientLimits limits_;
    // Accepted clients waiting for a usable tunnel connection (at start, during a rotation
    // handover or a reconnect), with their accept time; bounded and timed out.
    struct PendingClient {
        int fd;
        uint64_t since_ns;
    };
    std::vector<PendingClient> pending_;
    bool draining_ = false;
};

class TcpUpstreams final : public UpstreamProtocol {
  public:
    // `upstream` is where every stream of this protocol connects to.
    TcpUpstreams(loop::Context& ctx, Metrics& metrics, base::ObjectPool<TcpLeg>& legs,
                 ServiceUrl upstream, uint32_t max_connections) noexcept;

    [[nodiscard]] tunnel::OpenDecision open(tunnel::Session& session, tunnel::Stream& stream,
                                            const proto::tunnel::Open& open) noexcept override;
    void drain() noexcept override { draining_ = true; }
    [[nodiscard]] bool idle() const noexcept override { return true; }

  private:
    loop::Context& ctx_;
    Metrics& metrics_;
    base::ObjectPool<TcpLeg>& legs_;
    ServiceUrl upstream_;
    uint32_t max_connections_;
    bool draining_ = false;
};

}  // namespace ferry::role
