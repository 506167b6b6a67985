// Connector: the initiator's tunnel to one terminator (one --peer) on one shard — dials it,
// reconnects with exponential backoff and jitter, keeps the connection new streams go to
// (`usable()`), and replaces it make-before-break when its keys must rotate or the terminator
// drains (GOAWAY): the new connection takes new streams once its HELLO arrived, then the old one
// drains.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/base/log.h"
#include "ferry/io/op.h"
#include "ferry/io/socket.h"
#include "ferry/role/tunnel_endpoint.h"
#include "ferry/tunnel/session.h"

namespace ferry::role {

class Connector;

// What the initiator hears from its connectors.
class ConnectorEvents {
  public:
    // usable() may have changed (a connection came up, drains or was lost).
    virtual void on_connector_changed(Connector& connector) noexcept = 0;

  protected:
    ~ConnectorEvents() = default;
};

class Connector final : private tunnel::SessionOwner {
  public:
    // `endpoint` and `events` outlive the connector; `seed` varies the backoff jitter. A new
    // connection must finish its TLS handshake and HELLO within `handshake_timeout_ns`.
    Connector(TunnelEndpoint& endpoint, ConnectorEvents* events, io::SocketAddress peer,
              uint64_t seed, uint64_t handshake_timeout_ns) noexcept;
    ~Connector();
    Connector(const Connector&) = delete;
    Connector& operator=(const Connector&) = delete;

    // Every connection to this peer also counts into `counters` (they outlive the connector).
    void set_peer_counters(tunnel::PeerCounters* counters) noexcept { peer_counters_ = counters; }
    // Dials the terminator (and keeps doing so until drain()).
    void start() noexcept;
    // Periodic work: the sessions' pings and rotation, the reconnect timer.
    void tick(uint64_t now_ns) noexcept;
    // Stops dialing; every connection drains.
    void drain() noexcept;
    // Closes every connection at once; their streams are reset.
    void abort_all(const char* reason) noexcept;
    // True once draining and nothing is left in flight.
    [[nodiscard]] bool idle() const noexcept;
    // drain() was called: it dials no more and takes no new streams.
    [[nodiscard]] bool draining() const noexcept { return draining_; }
    // The connection new streams go to, or nullptr while there is none that takes them.
    [[nodiscard]] tunnel::Session* usable() const noexcept;
    [[nodiscard]] const io::SocketAddress& peer() const noexcept { return peer_; }
    // Logs this peer's connections and their streams.
    void dump() const noexcept;

  private:
    void on_session_ready(tunnel::Session& session) noexcept override;
    tunnel::OpenDecision on_stream_open(tunnel::Session& session, tunnel::Stream& stream,
                                        const proto::tunnel::Open& open) noexcept override;
    void on_session_draining(tunnel::Session& session) noexcept override;
    void on_session_closed(tunnel::Session& session) noexcept override;
    void on_session_rotation_due(tunnel::Session& session, const char* why) noexcept override;

    void connect() noexcept;
    void on_connect(int32_t res, uint32_t flags) noexcept;
    void on_connect_timeout(int32_t, uint32_t) noexcept { --connect_ops_; }
    void schedule_reconnect() noexcept;

    TunnelEndpoint& endpoint_;
    ConnectorEvents* events_;
    io::SocketAddress peer_;
    std::string peer_text_;
    tunnel::PeerCounters* peer_counters_ = nullptr;
    struct Attempt {
        std::unique_ptr<tunnel::Session> session;
        uint64_t started_ns = 0;
        bool timed_out = false;
    };
    std::vector<Attempt> sessions_;
    tunnel::Session* active_ = nullptr;  // where new streams go
    uint64_t handshake_timeout_ns_;

    io::MemberOp<Connector, &Connector::on_connect> connect_op_{this};
    io::MemberOp<Connector, &Connector::on_connect_timeout> timeout_op_{this};
    __kernel_timespec connect_timeout_{};
    int connect_fd_ = -1;
    int connect_ops_ = 0;
    bool connecting_ = false;
    uint32_t failures_ = 0;
    uint64_t reconnect_at_ns_ = 0;
    bool reconnect_pending_ = false;
    bool draining_ = false;
    uint64_t rng_;
    base::LogLimiter failure_log_{3, 10'000'000'000};  // 3 lines per 10 s, then a count
};

}  // namespace ferry::role
