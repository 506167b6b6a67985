// The TCP protocol handlers: at the initiator, each accepted client becomes one stream at once
// (there is no head to read; clients are held briefly while no tunnel connection is usable); at
// the terminator, each stream gets one upstream TCP connection, and OPEN_ACK once it connected.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ferry/base/log.h"
#include "ferry/base/object_pool.h"
#include "ferry/loop/context.h"
#include "ferry/role/limits.h"
#include "ferry/role/metrics.h"
#include "ferry/role/protocol.h"
#include "ferry/role/tcp_leg.h"
#include "ferry/route/rendezvous_set.h"

namespace ferry::role {

struct TcpClientLimits {
    ProcessLimits* process = nullptr;  // --max-connections, shared by every shard
    uint32_t max_pending = 4096;       // clients held while no tunnel connection is usable
    uint64_t hold_ns = 5'000'000'000;  // how long one is held before it is turned away
};

struct TcpUpstreamLimits {
    ProcessLimits* process = nullptr;    // --max-connections, --max-upstream-connects
    uint32_t per_tunnel_connects = 256;  // upstream connects in flight per tunnel connection
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
    // Closes a client that gets no stream; `slot` says whether it held a connection slot.
    void reject(int fd, bool slot) noexcept;

    loop::Context& ctx_;
    Metrics& metrics_;
    base::ObjectPool<TcpLeg>& legs_;
    StreamOpener& opener_;
    TcpClientLimits limits_;
    base::LogLimiter refusal_log_;
    // Accepted clients waiting for a usable tunnel connection (at start, during a rotation
    // handover or a reconnect), with their accept time; bounded and timed out.
    struct PendingClient {
        int fd;
        uint64_t since_ns;
    };
    std::vector<PendingClient> pending_;
    bool draining_ = false;
};

class TcpUpstreams final : public UpstreamProtocol, private ConnectWatcher {
  public:
    // `upstreams` (at least one, distinct addresses) are where streams of this protocol connect
    // to: each stream to the one its OPEN's routing key picks by rendezvous hashing, the same
    // choice on every shard and every terminator with the same --upstream set.
    TcpUpstreams(loop::Context& ctx, Metrics& metrics, base::ObjectPool<TcpLeg>& legs,
                 std::vector<ServiceUrl> upstreams, const TcpUpstreamLimits& limits) noexcept;

    // Refused (RESET RefusedStream, counted) when the process is at --max-connections or too
    // many connects are in flight for this tunnel or the process: a peer that floods OPENs must
    // not turn ferry into a connect storm against its upstream.
    [[nodiscard]] tunnel::OpenDecision open(tunnel::Session& session, tunnel::Stream& stream,
                                            const proto::tunnel::Open& open) noexcept override;
    void drain() noexcept override { draining_ = true; }
    [[nodiscard]] bool idle() const noexcept override { return true; }

  private:
    void on_connect_over(const void* tunnel) noexcept override;

    loop::Context& ctx_;
    Metrics& metrics_;
    base::ObjectPool<TcpLeg>& legs_;
    std::vector<ServiceUrl> upstreams_;
    route::RendezvousSet upstream_set_;  // index i is upstreams_[i]
    TcpUpstreamLimits limits_;
    absl::flat_hash_map<const void*, uint32_t> connecting_;  // per tunnel connection
    bool draining_ = false;
};

}  // namespace ferry::role
