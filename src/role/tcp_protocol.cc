#include "ferry/role/tcp_protocol.h"

#include <unistd.h>

#include "ferry/base/log.h"

namespace ferry::role {

namespace pt = proto::tunnel;

TcpClients::TcpClients(loop::Context& ctx, Metrics& metrics, base::ObjectPool<TcpLeg>& legs,
                       StreamOpener& opener, const TcpClientLimits& limits) noexcept
    : ctx_(ctx), metrics_(metrics), legs_(legs), opener_(opener), limits_(limits) {}

TcpClients::~TcpClients() {
    for (const PendingClient& p : pending_) {
        ::close(p.fd);
    }
}

void TcpClients::reject(int fd) noexcept {
    metrics_.connections_rejected.add();
    legs_.create(ctx_, metrics_, &legs_)->reject(fd);
}

void TcpClients::on_client(int fd, const ServiceUrl&) noexcept {
    const auto active = static_cast<uint64_t>(metrics_.connections_active.value());
    if (draining_ ||
        (limits_.max_connections != 0 && active + pending_.size() >= limits_.max_connections)) {
        FERRY_LOG(Debug, "client rejected: %s",
                  draining_ ? "draining" : "--max-connections reached");
        reject(fd);
        return;
    }
    if (!opener_.tunnel_usable()) {
        // No tunnel this instant (starting, reconnecting, or a rotation handover): hold the
        // client briefly rather than turn it away.
        if (pending_.size() >= limits_.max_pending) {
            reject(fd);
            return;
        }
        pending_.push_back({fd, ctx_.now_ns});
        return;
    }
    open_stream_for(fd);
}

void TcpClients::open_stream_for(int fd) noexcept {
    TcpLeg* leg = legs_.create(ctx_, metrics_, &legs_);
    tunnel::Stream* stream = opener_.open_stream(pt::StreamProtocol::Tcp, {}, {}, leg);
    if (stream == nullptr) {
        metrics_.connections_rejected.add();
        FERRY_LOG(Debug,
                  "client rejected: no tunnel connection takes a new stream now (none usable, "
                  "stream limit reached, or no free buffer for the OPEN)");
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
            reject(p.fd);
        } else {
            pending_[kept++] = p;
        }
    }
    pending_.resize(kept);
}

void TcpClients::drain() noexcept {
    draining_ = true;
    for (const PendingClient& p : pending_) {
        reject(p.fd);
    }
    pending_.clear();
}

TcpUpstreams::TcpUpstreams(loop::Context& ctx, Metrics& metrics, base::ObjectPool<TcpLeg>& legs,
                           ServiceUrl upstream, uint32_t max_connections) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      legs_(legs),
      upstream_(std::move(upstream)),
      max_connections_(max_connections) {}

tunnel::OpenDecision TcpUpstreams::open(tunnel::Session&, tunnel::Stream& stream,
                                        const pt::Open&) noexcept {
    if (draining_) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream, "draining");
    }
    if (max_connections_ != 0 &&
        static_cast<uint64_t>(metrics_.connections_active.value()) >= max_connections_) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream,
                                            "--max-connections reached");
    }
    TcpLeg* leg = legs_.create(ctx_, metrics_, &legs_);
    metrics_.connections_accepted.add();
    leg->start_connect(upstream_.address, &stream);
    return tunnel::OpenDecision::accept(leg);
}

}  // namespace ferry::role
