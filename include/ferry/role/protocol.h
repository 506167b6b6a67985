// Protocol handlers: what a role does with each stream protocol (TCP today; WebSocket and gRPC
// plug in here). The initiator keeps one ClientProtocol per listener protocol: accept, read the
// protocol's head where it has one, pick the route, open the stream with its metadata. The
// terminator keeps one UpstreamProtocol per stream protocol: an upstream leg or a built-in sink;
// a protocol with none is refused with RESET UnsupportedProtocol and a reason.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "ferry/io/socket.h"
#include "ferry/proto/tunnel/frame.h"
#include "ferry/tunnel/session.h"
#include "ferry/tunnel/stream.h"

namespace ferry::role {

// How a listener or upstream URL names its protocol.
enum class Scheme : uint8_t { Tcp, Ws, Wss, Grpc, Grpcs };

// A --listen or --upstream endpoint as the user gave it, resolved (config::parse_service_url).
struct ServiceUrl {
    Scheme scheme = Scheme::Tcp;
    std::string host;  // as written: for Host headers, SNI and logs
    uint16_t port = 0;
    std::string path;  // ws:// and wss://: request path and query ("/" when absent)
    io::SocketAddress address;
    std::string text;     // the URL as written, for logs
    double weight = 1.0;  // upstreams: its share of its protocol's keys (--upstream-weights)

    [[nodiscard]] proto::tunnel::StreamProtocol protocol() const noexcept {
        switch (scheme) {
            case Scheme::Ws:
            case Scheme::Wss:
                return proto::tunnel::StreamProtocol::WebSocket;
            case Scheme::Grpc:
            case Scheme::Grpcs:
                return proto::tunnel::StreamProtocol::Grpc;
            case Scheme::Tcp:
                break;
        }
        return proto::tunnel::StreamProtocol::Tcp;
    }
    [[nodiscard]] bool tls() const noexcept {
        return scheme == Scheme::Wss || scheme == Scheme::Grpcs;
    }
};

// Number of protocols a registry indexes (proto::tunnel::StreamProtocol values).
inline constexpr size_t kProtocolCount = 3;

[[nodiscard]] constexpr const char* protocol_name(proto::tunnel::StreamProtocol p) noexcept {
    switch (p) {
        case proto::tunnel::StreamProtocol::Tcp:
            return "tcp";
        case proto::tunnel::StreamProtocol::WebSocket:
            return "websocket";
        case proto::tunnel::StreamProtocol::Grpc:
            return "grpc";
    }
    return "unknown";
}

// Where an initiator's protocol handlers open streams: the peer set (first healthy terminator).
class StreamOpener {
  public:
    // A stream towards a usable tunnel connection, or nullptr (none usable, stream limit reached,
    // no buffer for the OPEN). `metadata` is encoded into the OPEN before this returns.
    [[nodiscard]] virtual tunnel::Stream* open_stream(
        proto::tunnel::StreamProtocol protocol, std::string_view routing_key,
        std::span<const proto::tunnel::MetadataEntry> metadata,
        tunnel::StreamHandler* handler) noexcept = 0;
    // True when some tunnel connection takes new streams now.
    [[nodiscard]] virtual bool tunnel_usable() const noexcept = 0;

  protected:
    ~StreamOpener() = default;
};

// Initiator side: the clients of every listener of one protocol. Shard-affine; all calls come
// from the shard's loop.
class ClientProtocol {
  public:
    virtual ~ClientProtocol() = default;
    // A client connected to `listener`; the handler owns `fd` from now on.
    virtual void on_client(int fd, const ServiceUrl& listener) noexcept = 0;
    // Before the first client: loads what the handler needs (certificates); a failure names
    // the reason and the process does not start.
    [[nodiscard]] virtual absl::Status prepare() noexcept { return absl::OkStatus(); }
    // SIGHUP: re-reads what prepare() loaded.
    virtual void reload() noexcept {}
    // A tunnel connection became usable: clients held while none was may go on.
    virtual void on_tunnel_usable() noexcept {}
    // Periodic work (~100 ms): deadlines of held clients.
    virtual void tick(uint64_t /*now_ns*/) noexcept {}
    // Stop taking clients; open ones finish.
    virtual void drain() noexcept {}
    // True once none of its clients is left.
    [[nodiscard]] virtual bool idle() const noexcept = 0;
};

// Terminator side: serves the streams of one protocol that the peer opens.
class UpstreamProtocol {
  public:
    virtual ~UpstreamProtocol() = default;
    // The peer opened `stream` (OPEN `open`): a handler for it, or a refusal with the RESET code
    // and reason.
    [[nodiscard]] virtual tunnel::OpenDecision open(tunnel::Session& session,
                                                    tunnel::Stream& stream,
                                                    const proto::tunnel::Open& open) noexcept = 0;
    // Before the first stream: loads what the handler needs (a TLS context); a failure names
    // the reason and the process does not start.
    [[nodiscard]] virtual absl::Status prepare() noexcept { return absl::OkStatus(); }
    // Periodic work (~100 ms): deadlines of upstream handshakes and closes.
    virtual void tick(uint64_t /*now_ns*/) noexcept {}
    // Stop taking streams; open ones finish.
    virtual void drain() noexcept {}
    // True once none of its streams is left.
    [[nodiscard]] virtual bool idle() const noexcept = 0;
};

// Protocol -> handler. Unknown protocol values and protocols without a handler find none.
template <class Handler>
class ProtocolRegistry final {
  public:
    void add(proto::tunnel::StreamProtocol protocol, std::unique_ptr<Handler> handler) noexcept {
        handlers_[static_cast<size_t>(protocol)] = std::move(handler);
    }
    [[nodiscard]] Handler* find(proto::tunnel::StreamProtocol protocol) const noexcept {
        const auto i = static_cast<size_t>(protocol);
        return i < kProtocolCount ? handlers_[i].get() : nullptr;
    }
    template <class F>
    void for_each(F&& f) const {
        for (const auto& h : handlers_) {
            if (h != nullptr) {
                f(*h);
            }
        }
    }

  private:
    std::array<std::unique_ptr<Handler>, kProtocolCount> handlers_;
};

}  // namespace ferry::role
