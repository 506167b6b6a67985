// WsLeg: one WebSocket client of the initiator, carried by one tunnel message stream.
//
// Handshake: the HTTP/1.1 Upgrade head is read and checked, a stream is opened with the request's
// metadata, and the 101 goes out only when the far side accepted the stream (OPEN_ACK), so a
// client never sees a WebSocket that leads nowhere; refusals are HTTP errors with a reason.
// Client -> tunnel: receive buffers are parsed in place and each message piece goes to the
// stream as a slice of the receive buffer (no copy), tagged with its kind and end of message.
// Tunnel -> client: each piece becomes one frame (header from a small per-leg array, payload
// from the tunnel buffer), written with one gathered sendmsg; credit returns once it is written.
// Reading stops while the stream has a window's worth queued (backpressure, bounded memory).
// On a wss:// listener the same leg runs over TLS (transport::TlsTransport over its socket, kTLS
// where the kernel has it); the leg only ever sees plaintext.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ferry/base/object_pool.h"
#include "ferry/base/shared_limit.h"
#include "ferry/loop/context.h"
#include "ferry/proto/http1/request_parser.h"
#include "ferry/proto/ws/frame.h"
#include "ferry/proto/ws/frame_parser.h"
#include "ferry/role/metrics.h"
#include "ferry/role/protocol.h"
#include "ferry/role/route_key.h"
#include "ferry/tls/tls_context.h"
#include "ferry/transport/tcp_transport.h"
#include "ferry/transport/tls_transport.h"
#include "ferry/tunnel/stream.h"

namespace ferry::role {

class WsLeg;

// What a leg needs from the handler of its listener: where to open its stream, its limits, and
// the list of legs with a deadline (handshake, OPEN_ACK wait, closing linger).
class WsLegOwner {
  public:
    [[nodiscard]] virtual StreamOpener& opener() noexcept = 0;
    // Counters of the client-side transports (TLS handshakes of wss:// clients).
    [[nodiscard]] virtual transport::Metrics& transport_metrics() noexcept = 0;
    [[nodiscard]] virtual uint64_t max_message_size() const noexcept = 0;
    [[nodiscard]] virtual const std::string& node_name() const noexcept = 0;
    // --route-key: where a client's routing key is in its Upgrade request.
    [[nodiscard]] virtual const RouteKeyRule& route_key_rule() const noexcept = 0;
    // --ws-allowed-origins: an Origin header outside the list is refused with 403.
    [[nodiscard]] virtual bool origin_allowed(std::string_view origin) const noexcept = 0;
    // --ws-ping-interval and --ws-idle-timeout (0: off).
    [[nodiscard]] virtual uint64_t ping_interval_ns() const noexcept = 0;
    [[nodiscard]] virtual uint64_t idle_timeout_ns() const noexcept = 0;
    [[nodiscard]] virtual bool draining() const noexcept = 0;
    // Logs a refusal or protocol failure, rate-limited across the shard's legs.
    virtual void log_refusal(const char* what, std::string_view detail) noexcept = 0;
    virtual void watch_deadline(WsLeg* leg) noexcept = 0;
    virtual void unwatch_deadline(WsLeg* leg) noexcept = 0;

  protected:
    ~WsLegOwner() = default;
};

class WsLeg final : public tunnel::StreamHandler,
                    private transport::TransportSink,
                    public loop::Retirable {
  public:
    // Lives in `pool` and frees itself there once its socket closed; `metrics` and `owner`
    // outlive it.
    WsLeg(loop::Context& ctx, Metrics& metrics, base::ObjectPool<WsLeg>* pool,
          WsLegOwner& owner) noexcept;

    // An accepted client on a listener whose URL path is `listen_path` ("/" serves any path);
    // the view must outlive the leg. The head (and the TLS handshake before it, when `tls` is
    // set: a wss:// listener) must be complete within `timeout_ns`.
    void start(int fd, std::string_view listen_path, uint64_t timeout_ns,
               const tls::TlsContext* tls) noexcept;
    // Closes a socket that gets no service (over --max-connections, draining).
    void reject(int fd) noexcept;
    // The leg holds one unit of `limit` (--max-connections) and gives it back when it is freed.
    void hold_slot(base::SharedLimit* limit) noexcept { slot_ = limit; }

    // Its deadline passed (the owner's tick): answers what the phase calls for and closes, or
    // (open) pings the client or closes it for idling.
    void on_deadline() noexcept;
    // The gateway drains: a client still sending its Upgrade request gets a 503 now.
    void on_drain() noexcept;
    // The shard exits with the leg still open (its pool is going away): frees its heap memory.
    void abandon() noexcept {
        request_.reset();
        answer_.reset();
    }
    [[nodiscard]] uint64_t deadline_ns() const noexcept { return deadline_ns_; }
    // The owner's intrusive list of legs with a deadline.
    WsLeg* deadline_prev = nullptr;
    WsLeg* deadline_next = nullptr;
    bool deadline_watched = false;

    // StreamHandler
    void on_stream_data(buf::Chunk&& data, proto::tunnel::DataFlags flags) noexcept override;
    void on_stream_fin() noexcept override;
    void on_stream_accepted(const proto::tunnel::MetadataView& metadata) noexcept override;
    void on_stream_reset(proto::tunnel::ErrorCode code) noexcept override;
    void on_stream_writable() noexcept override;

    void retire() noexcept override;

    // FrameSink (called by the frame parser from on_socket_data)
    void on_message_start(proto::ws::Opcode op) noexcept;
    bool on_data(std::span<const std::byte> bytes, bool fin) noexcept;
    bool on_control(proto::ws::Opcode op, std::span<const std::byte> payload) noexcept;

  private:
    // Open: the next deadline is the next keepalive Ping or the idle limit, whichever is first.
    void arm_keepalive() noexcept;
    void on_keepalive_due() noexcept;
    enum class Phase : uint8_t {
        Handshake,  // reading the Upgrade head
        Opening,    // stream opened, waiting for OPEN_ACK before the 101
        Open,       // frames both ways
        Closing,    // a last answer (HTTP error or Close frame) is being written
        Lingering,  // that answer went out; reading to EOF so the close is not a RST
    };

    // TransportSink
    void on_transport_read(buf::Chunk&& bytes) noexcept override;
    void on_transport_written() noexcept override;
    void on_transport_down(const char* reason, int err) noexcept override;
    void on_transport_quiescent() noexcept override;

    // Reading from the client, as last asked of the transport.
    void read_on() noexcept;
    void read_off() noexcept;
    void send(uint32_t iov_count, uint64_t bytes) noexcept;

    void read_head(buf::Chunk&& bytes) noexcept;
    void open_stream() noexcept;
    void read_frames(buf::Chunk&& bytes) noexcept;
    // Answers the handshake with an HTTP error (logged) and closes after it is written.
    void refuse(int http_status, std::string_view reason) noexcept;
    // Sends a Close frame with `code` and `reason` and closes after it is written.
    void close_with(proto::ws::CloseCode code, std::string_view reason) noexcept;
    // The stream is no longer ours: resets it when it is not done, else lets it finish.
    void reset_stream(proto::tunnel::ErrorCode code) noexcept;
    void release_stream() noexcept;
    void send_more() noexcept;
    void after_last_answer() noexcept;
    void close() noexcept;
    // Drops the stream, the deadline and every queued piece (closing from here on).
    void let_go() noexcept;
    void set_deadline(uint64_t ns) noexcept;

    // The frames of one send: what to drop from out_ and how much credit to return after it.
    static constexpr uint32_t kMaxFrames = 8;
    static constexpr uint32_t kMaxIov = 2 * kMaxFrames + 2;
    static constexpr size_t kHeadAnswerSize = 1024;  // 101 or an error response
    static constexpr uint64_t kLingerNs = 2'000'000'000;

    loop::Context& ctx_;
    Metrics& metrics_;
    base::ObjectPool<WsLeg>* pool_;
    WsLegOwner& owner_;
    transport::TcpTransport tcp_;
    std::unique_ptr<transport::TlsTransport> tls_;  // wss:// only, over tcp_
    transport::Transport* conn_ = &tcp_;            // what the leg reads and writes
    bool receiving_ = false;
    bool sending_ = false;
    // The Upgrade head; allocated for the handshake only (its views feed the OPEN and the 101).
    std::unique_ptr<proto::http1::RequestParser> request_;
    proto::ws::FrameParser frames_;
    std::string_view listen_path_;
    tunnel::Stream* stream_ = nullptr;
    buf::Chunk early_bytes_;         // bytes after the head, read before the 101 was sent
    buf::Chunk* reading_ = nullptr;  // the receive buffer being parsed (to slice pieces from)
    proto::tunnel::MessageKind in_kind_ = proto::tunnel::MessageKind::Binary;

    buf::ChunkQueue out_;          // message pieces for the client; tags: kTag* below
    bool out_in_message_ = false;  // a message's first frame was queued, its last not yet
    iovec iov_[kMaxIov];
    std::array<std::array<std::byte, proto::ws::kMaxFrameHeaderSize>, kMaxFrames> headers_{};
    uint32_t sending_frames_ = 0;
    uint32_t sending_payload_ = 0;
    bool sending_answer_ = false;
    bool ping_owed_ = false;     // a keepalive Ping waits for the next write
    uint64_t last_read_ns_ = 0;  // last bytes from the client (open phase)
    uint64_t next_ping_ns_ = 0;
    bool sending_pong_ = false;
    bool sending_close_ = false;

    // The 101 or an HTTP error: held only until written, so an open connection does not carry it.
    std::unique_ptr<char[]> answer_;
    size_t answer_len_ = 0;
    std::array<std::byte, proto::ws::kMaxControlPayload> ping_{};
    uint8_t ping_len_ = 0;
    bool pong_owed_ = false;
    std::array<std::byte, proto::ws::kMaxControlFrameSize> pong_frame_{};
    // A Close frame for the client, then the connection ends.
    std::array<std::byte, proto::ws::kMaxControlPayload> close_payload_{};
    uint8_t close_len_ = 0;
    bool close_owed_ = false;
    bool close_sent_ = false;
    std::array<std::byte, proto::ws::kMaxControlFrameSize> close_frame_{};
    // A Close message from the tunnel, in pieces.
    size_t tunnel_close_len_ = 0;
    bool tunnel_close_too_big_ = false;

    Phase phase_ = Phase::Handshake;
    bool finished_ = false;  // our direction of the stream is finished (client Close)
    bool fin_from_peer_ = false;
    bool closing_ = false;
    bool paused_ = false;  // reading stopped for backpressure
    uint64_t deadline_ns_ = 0;
    base::SharedLimit* slot_ = nullptr;
};

}  // namespace ferry::role
