#include "ferry/role/tcp_protocol.h"

#include <unistd.h>

#include "ferry/base/check.h"
#include "ferry/base/log.h"
#include "ferry/role/route_key.h"

namespace ferry::role {

namespace pt = proto::tunnel;

TcpClients::TcpClients(loop::Context& ctx, Metrics& metrics, base::ObjectPool<TcpLeg>& legs,
                       StreamOpener& opener, const TcpClientLimits& limits) noexcept
    : ctx_(ctx), metrics_(metrics), legs_(legs), opener_(opener), limits_(limits) {}

TcpClients::~TcpClients() {
    for (const PendingClient& p : pending_) {
        ::close(p.fd);
        limits_.process->connections.release();
    }
}

void TcpClients::reject(int fd, bool slot) noexcept {
    metrics_.connections_rejected.add();
    if (slot) {
        limits_.process->connections.release();
    }
    legs_.create(ctx_, metrics_, &legs_)->reject(fd);
}

void TcpClients::on_client(int fd, const ServiceUrl& listener) noexcept {
    if (draining_) {
        reject(fd, false);
        return;
    }
    if (!limits_.process->connections.try_acquire()) {
        FERRY_LOG_LIMITED(refusal_log_, ctx_.now_ns, Warn,
                          "client on %s refused: --max-connections (%u) reached in this process",
                          listener.text, limits_.process->connections.max());
        reject(fd, false);
        return;
    }
    if (!opener_.tunnel_usable()) {
        // No tunnel this instant (starting, reconnecting, or a rotation handover): hold the
        // client briefly rather than turn it away.
        if (pending_.size() >= limits_.max_pending) {
            FERRY_LOG_LIMITED(refusal_log_, ctx_.now_ns, Warn,
                              "client on %s refused: no usable tunnel and %zu clients waiting",
                              listener.text, pending_.size());
            reject(fd, true);
            return;
        }
        pending_.push_back({fd, ctx_.now_ns});
        return;
    }
    open_stream_for(fd);
}

void TcpClients::open_stream_for(int fd) noexcept {
    TcpLeg* leg = legs_.create(ctx_, metrics_, &legs_);
    leg->hold_slot(&limits_.process->connections);
    // A TCP client is keyed by its address: that picks its terminator and travels in the OPEN.
    KeyBuffer key;
    (void)client_address_key(fd, &key);
    tunnel::Stream* stream = opener_.open_stream(pt::StreamProtocol::Tcp, key.view(), {}, leg);
    if (stream == nullptr) {
        metrics_.connections_rejected.add();
        FERRY_LOG_LIMITED(refusal_log_, ctx_.now_ns, Warn,
                          "client refused: no tunnel connection takes a new stream now (none "
                          "usable, stream limit reached, or no free buffer for the OPEN)");
        leg->reject(fd);
        return;
    }
    metrics_.connections_accepted.add();
    leg->start_accepted(fd, stream);
}

void TcpClients::on_tunnel_usable() noexcept {
    std::vector<PendingClient> waiting;
    waiting.swap(pending_);
    for (const PendingClient& p : waiting) {
        open_stream_for(p.fd);
    }
}

void TcpClients::tick(uint64_t now_ns) noexcept {
    // Clients that waited a whole hold time for a tunnel get a clean close.
    size_t kept = 0;
    for (const PendingClient& p : pending_) {
        if (now_ns - p.since_ns >= limits_.hold_ns) {
            reject(p.fd, true);
        } else {
            pending_[kept++] = p;
        }
    }
    pending_.resize(kept);
}

void TcpClients::drain() noexcept {
    draining_ = true;
    for (const PendingClient& p : pending_) {
        reject(p.fd, true);
    }
    pending_.clear();
}

TcpUpstreams::TcpUpstreams(loop::Context& ctx, Metrics& metrics, base::ObjectPool<TcpLeg>& legs,
                           std::vector<ServiceUrl> upstreams,
                           const TcpUpstreamLimits& limits) noexcept
    : ctx_(ctx), metrics_(metrics), legs_(legs), upstreams_(std::move(upstreams)), limits_(limits) {
    FERRY_CHECK(!upstreams_.empty());
    for (const ServiceUrl& u : upstreams_) {
        // Ids are the addresses as IP:port: every terminator with the same --upstream set ranks
        // them alike.
        const absl::Status st = upstream_set_.add(u.address.to_string(), u.weight);
        FERRY_CHECK(st.ok());
    }
}

tunnel::OpenDecision TcpUpstreams::open(tunnel::Session& session, tunnel::Stream& stream,
                                        const pt::Open& open) noexcept {
    if (draining_) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream, "draining");
    }
    uint32_t& connecting = connecting_[&session];
    if (connecting >= limits_.per_tunnel_connects) {
        metrics_.upstream_connects_refused.add();
        if (connecting == 0) {
            connecting_.erase(&session);
        }
        return tunnel::OpenDecision::refuse(
            pt::ErrorCode::RefusedStream,
            "too many upstream connects in flight for this tunnel connection");
    }
    if (!limits_.process->upstream_connects.try_acquire()) {
        metrics_.upstream_connects_refused.add();
        if (connecting == 0) {
            connecting_.erase(&session);
        }
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream,
                                            "too many upstream connects in flight (process)");
    }
    if (!limits_.process->connections.try_acquire()) {
        limits_.process->upstream_connects.release();
        metrics_.connections_rejected.add();
        if (connecting == 0) {
            connecting_.erase(&session);
        }
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream,
                                            "--max-connections reached in this process");
    }
    ++connecting;
    metrics_.upstream_connects_in_flight.add(1);
    TcpLeg* leg = legs_.create(ctx_, metrics_, &legs_);
    leg->hold_slot(&limits_.process->connections);
    leg->watch_connect(this, &session);
    // The OPEN's routing key is the one the initiator chose this terminator by.
    const route::Choice choice = upstream_set_.choose(open.routing_key);
    if (!leg->start_connect(upstreams_[choice.endpoint].address, &stream)) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::ConnectRefused,
                                            "no socket for the upstream connect");
    }
    metrics_.connections_accepted.add();
    return tunnel::OpenDecision::accept(leg);
}

void TcpUpstreams::on_connect_over(const void* tunnel) noexcept {
    limits_.process->upstream_connects.release();
    metrics_.upstream_connects_in_flight.add(-1);
    auto it = connecting_.find(tunnel);
    if (it != connecting_.end() && --it->second == 0) {
        connecting_.erase(it);
    }
}

}  // namespace ferry::role
