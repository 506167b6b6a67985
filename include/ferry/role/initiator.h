// Initiator (cluster A gateway), one per shard: accepts clients on every --listen (each listener
// says its protocol), hands each to that protocol's handler, and carries the resulting streams
// over this shard's tunnel connections to the terminators (--peer, repeatable): one Connector per
// peer; new streams go to the first peer with a usable connection.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/io/acceptor.h"
#include "ferry/io/socket.h"
#include "ferry/role/connector.h"
#include "ferry/role/limits.h"
#include "ferry/role/protocol.h"
#include "ferry/role/tcp_protocol.h"
#include "ferry/role/tunnel_endpoint.h"
#include "ferry/shard/service.h"

namespace ferry::role {

struct InitiatorConfig {
    std::vector<ServiceUrl> listen;
    std::vector<io::SocketAddress> peers;
    uint32_t max_pending = 4096;  // clients held while no tunnel connection is usable
    uint64_t handshake_timeout_ns = 10'000'000'000;  // TLS handshake and HELLO of a new connection
    std::string node_name;
    uint64_t seed = 1;  // backoff jitter
    TunnelSecurity security;
    tunnel::Tuning tuning;
};

class Initiator final : public shard::Service, public StreamOpener, private ConnectorEvents {
  public:
    // `ctx`, `metrics` and `limits` (shared by every shard) outlive the initiator.
    Initiator(loop::Context& ctx, ShardMetrics& metrics, ProcessLimits& limits,
              InitiatorConfig config) noexcept;
    ~Initiator() override;

    [[nodiscard]] bool start() noexcept override;
    void drain() noexcept override;
    void stop() noexcept override;
    void reload() noexcept override { endpoint_.reload(); }
    [[nodiscard]] bool idle() const noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void housekeeping() noexcept override { endpoint_.housekeeping(); }
    void dump() const noexcept override;

    // StreamOpener: the first peer with a usable connection takes the stream.
    [[nodiscard]] tunnel::Stream* open_stream(
        proto::tunnel::StreamProtocol protocol, std::string_view routing_key,
        std::span<const proto::tunnel::MetadataEntry> metadata,
        tunnel::StreamHandler* handler) noexcept override;
    [[nodiscard]] bool tunnel_usable() const noexcept override;

  private:
    // One --listen socket and the handler of its protocol.
    class Listener final : private io::AcceptHandler {
      public:
        Listener(io::Ring& ring, ServiceUrl url, ClientProtocol* handler) noexcept
            : url_(std::move(url)), handler_(handler), acceptor_(ring, this) {}
        [[nodiscard]] absl::Status start() noexcept;
        void stop() noexcept { acceptor_.stop(); }
        [[nodiscard]] bool idle() const noexcept { return acceptor_.idle(); }

      private:
        void on_accepted(int fd) noexcept override { handler_->on_client(fd, url_); }

        ServiceUrl url_;
        ClientProtocol* handler_;
        io::Acceptor acceptor_;
    };

    void on_connector_changed(Connector& connector) noexcept override;

    ProcessLimits& limits_;
    InitiatorConfig config_;
    TunnelEndpoint endpoint_;
    ProtocolRegistry<ClientProtocol> clients_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::vector<std::unique_ptr<Connector>> connectors_;
    bool draining_ = false;
};

}  // namespace ferry::role
