// The terminator's WebSocket upstream (--upstream ws://HOST:PORT[/PATH]): each WebSocket stream
// the peer opens gets one client connection to a real WebSocket server.
//
// Handshake: connect, write the Upgrade request (the upstream URL's path joined with the
// client's, the client's subprotocol offer and Origin, a fresh CSPRNG key, the trail as
// X-Ferry-Trail), check the 101 with ResponseHeadParser + validate_upgrade_response, and only
// then accept the stream (OPEN_ACK, with the chosen subprotocol): the initiator answers its
// client's Upgrade with what the real server said. A refused connect resets the stream with
// ConnectRefused, any other answer than a valid 101 with RefusedStream (the status line logged).
// Tunnel -> upstream: each message piece becomes client frames, masked (RFC 6455 §5.3) while it
// is copied into local pool buffers (one pass; the tunnel's receive buffers are shared slices and
// never written); credit returns once the socket took the frames.
// Upstream -> tunnel: FrameParser(Role::Client) over the receive buffers, each piece a slice of
// one (no copy); reading stops while the stream has a window's worth queued (backpressure).
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "ferry/base/log.h"
#include "ferry/base/object_pool.h"
#include "ferry/base/shared_limit.h"
#include "ferry/io/socket_io.h"
#include "ferry/loop/context.h"
#include "ferry/proto/ws/frame.h"
#include "ferry/proto/ws/frame_parser.h"
#include "ferry/proto/ws/mask.h"
#include "ferry/proto/ws/response_head_parser.h"
#include "ferry/role/limits.h"
#include "ferry/role/metrics.h"
#include "ferry/role/protocol.h"
#include "ferry/role/tcp_leg.h"
#include "ferry/tunnel/stream.h"

namespace ferry::role {

// Masking keys for a shard's client frames. RFC 6455 §10.3: the key must be unpredictable to the
// server's other peers (it defeats cache poisoning through intermediaries that read the
// plaintext), so keys come from the kernel CSPRNG (getrandom), a 256-byte block at a time to keep
// the syscall off the per-frame path; 64 frames share one draw, none sees another's key reused.
class MaskKeys final {
  public:
    [[nodiscard]] proto::ws::MaskKey next() noexcept;

  private:
    void refill() noexcept;
    std::array<std::byte, 256> block_{};
    size_t used_ = 256;  // all used: the first next() draws
};

struct WsUpstreamOptions {
    ProcessLimits* process = nullptr;                // --max-connections, --max-upstream-connects
    uint32_t per_tunnel_connects = 256;              // upstream connects in flight per tunnel
    uint64_t max_message_size = uint64_t{16} << 20;  // --ws-max-message (upstream -> tunnel)
    std::string node_name;                           // appended to the OPEN's trail
    // Connect, Upgrade request and 101 must be done within this (--connect-timeout): a server
    // that accepts and never answers resets the stream with Timeout (the client gets 504).
    uint64_t handshake_ns = 5'000'000'000;
    // Our Close must be answered (and the upstream must take our last frames) within this.
    uint64_t close_ns = 2'000'000'000;
};

class WsUpstreams;

class WsUpstreamLeg final : public tunnel::StreamHandler,
                            private io::SocketEvents,
                            public loop::Retirable {
  public:
    // Lives in its owner's pool and frees itself there once its socket closed.
    WsUpstreamLeg(loop::Context& ctx, Metrics& metrics, WsUpstreams& owner) noexcept;

    // Builds the Upgrade request for `stream` from `open` (copied: the OPEN's views end with the
    // call) and connects to `upstream`. False, with the leg closing itself and the stream
    // untouched, when no socket could be made or the request does not fit.
    [[nodiscard]] bool start(const ServiceUrl& upstream, tunnel::Stream* stream,
                             const proto::tunnel::Open& open) noexcept;
    void hold_slot(base::SharedLimit* limit) noexcept { slot_ = limit; }
    void watch_connect(ConnectWatcher* watcher, const void* tunnel) noexcept {
        watcher_ = watcher;
        tunnel_ = tunnel;
    }
    // The shard exits with the leg still open (its pool is going away): frees its heap memory.
    void abandon() noexcept;

    // StreamHandler
    void on_stream_data(buf::Chunk&& data, proto::tunnel::DataFlags flags) noexcept override;
    void on_stream_fin() noexcept override;
    void on_stream_reset(proto::tunnel::ErrorCode code) noexcept override;
    void on_stream_writable() noexcept override;

    void retire() noexcept override;

    // FrameSink (called by the frame parser from on_socket_data)
    void on_message_start(proto::ws::Opcode op) noexcept;
    bool on_data(std::span<const std::byte> bytes, bool fin) noexcept;
    bool on_control(proto::ws::Opcode op, std::span<const std::byte> payload) noexcept;

    // Its deadline passed (the owner's tick): an unanswered handshake resets the stream with
    // Timeout; an unanswered Close ends the stream and the connection.
    void on_deadline() noexcept;
    [[nodiscard]] uint64_t deadline_ns() const noexcept { return deadline_ns_; }

    // The owner's list of live legs.
    WsUpstreamLeg* live_prev = nullptr;
    WsUpstreamLeg* live_next = nullptr;
    // The owner's list of legs with a deadline (handshake, closing).
    WsUpstreamLeg* deadline_prev = nullptr;
    WsUpstreamLeg* deadline_next = nullptr;
    bool deadline_watched = false;

  private:
    enum class Phase : uint8_t {
        Connecting,  // TCP connect in flight
        Handshake,   // Upgrade request written, reading the response head
        Open,        // frames both ways
        Closing,     // our Close is queued or sent; waiting for the upstream's
    };

    // SocketEvents
    void on_socket_data(buf::Chunk&& bytes) noexcept override;
    void on_socket_eof() noexcept override;
    void on_socket_error(const char* what, int err) noexcept override;
    void on_socket_sent() noexcept override;
    void on_socket_connected(int res) noexcept override;
    void on_socket_closed() noexcept override;

    void read_head(buf::Chunk&& bytes) noexcept;
    void read_frames(buf::Chunk&& bytes) noexcept;
    // Queues `payload` as masked frames of `op` (Continuation after the first), FIN on the last
    // when `fin`. False when no buffer was free (the leg then failed).
    bool queue_frames(proto::ws::Opcode op, std::span<const std::byte> payload, bool fin) noexcept;
    // Makes `need` bytes of room in the staging buffer (sealing it, taking a fresh one). False
    // when no buffer was free (the leg then failed).
    bool reserve(size_t need) noexcept;
    // Queues the staged frames in out_ as one node.
    void seal() noexcept;
    bool queue_control(proto::ws::Opcode op, std::span<const std::byte> payload) noexcept;
    void queue_close(std::span<const std::byte> payload) noexcept;
    void send_more() noexcept;
    // Resets the stream with `code` (when still ours) and closes the connection.
    void fail(proto::tunnel::ErrorCode code) noexcept;
    // The stream is no longer ours: finishes our direction if needed and detaches.
    void release_stream() noexcept;
    void maybe_done() noexcept;
    void close() noexcept;
    void connect_over() noexcept;
    void set_deadline(uint64_t ns) noexcept;

    static constexpr uint32_t kMaxIov = 16;
    // A frame is not started in less room than this (unless its payload is smaller).
    static constexpr size_t kMinFramePayload = 512;

    loop::Context& ctx_;
    Metrics& metrics_;
    WsUpstreams& owner_;
    io::SocketIo io_;
    tunnel::Stream* stream_ = nullptr;
    // Handshake state; allocated for the handshake only.
    std::unique_ptr<proto::ws::ResponseHeadParser> response_;
    std::string request_;    // the Upgrade request, written once connected
    std::string protocols_;  // the client's offered subprotocols ("a, b")
    std::array<char, 24> key_{};
    proto::ws::FrameParser frames_;
    buf::Chunk* reading_ = nullptr;  // the receive buffer being parsed (to slice pieces from)
    proto::tunnel::MessageKind in_kind_ = proto::tunnel::MessageKind::Binary;

    // Whole wire frames for the upstream (header + masked payload, in local pool buffers). Each
    // node's tag is the part of its bytes that is not tunnel payload (headers; whole control
    // frames), so chunk.size() - tag is the credit it returns once written.
    buf::ChunkQueue out_;
    // The local buffer frames are written into: [staging_start_, staging_end_) is not yet in
    // out_ (seal() moves it there as a slice); what precedes it may be in flight and is never
    // written again. Dropped when nothing waits, so an idle leg holds no buffer.
    buf::Chunk staging_;
    uint32_t staging_start_ = 0;
    uint32_t staging_end_ = 0;
    size_t staging_overhead_ = 0;  // non-credit bytes of the unsealed part
    bool out_in_message_ = false;  // a message's first frame was queued, its last not yet
    iovec iov_[kMaxIov];
    uint32_t sending_nodes_ = 0;
    uint64_t sending_credit_ = 0;
    // A Close message from the tunnel, in pieces.
    std::array<std::byte, proto::ws::kMaxControlPayload> close_payload_{};
    size_t tunnel_close_len_ = 0;
    bool tunnel_close_too_big_ = false;

    Phase phase_ = Phase::Connecting;
    bool close_queued_ = false;    // our Close frame is in out_ (or sent)
    bool close_received_ = false;  // the upstream's Close came
    bool finished_ = false;        // our direction of the stream is finished
    bool fin_from_peer_ = false;
    bool paused_ = false;  // reading stopped for backpressure
    bool closing_ = false;
    uint64_t deadline_ns_ = 0;
    base::SharedLimit* slot_ = nullptr;
    ConnectWatcher* watcher_ = nullptr;
    const void* tunnel_ = nullptr;
};

class WsUpstreams final : public UpstreamProtocol, private ConnectWatcher {
  public:
    // Everything referenced outlives the handler.
    WsUpstreams(loop::Context& ctx, Metrics& metrics, ServiceUrl upstream,
                WsUpstreamOptions options) noexcept;
    // At shard exit: frees the heap memory of legs still open.
    ~WsUpstreams() override;

    // Refused like TcpUpstreams::open (connect limits per tunnel and per process,
    // --max-connections), so a peer that floods OPENs cannot storm the upstream.
    [[nodiscard]] tunnel::OpenDecision open(tunnel::Session& session, tunnel::Stream& stream,
                                            const proto::tunnel::Open& open) noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void drain() noexcept override { draining_ = true; }
    [[nodiscard]] bool idle() const noexcept override { return true; }

  private:
    friend class WsUpstreamLeg;

    void watch_deadline(WsUpstreamLeg* leg) noexcept;
    void unwatch_deadline(WsUpstreamLeg* leg) noexcept;

    void on_connect_over(const void* tunnel) noexcept override;
    // Logs a refusal or an upstream failure, rate-limited across the shard's legs.
    void log_refusal(const char* what, std::string_view detail) noexcept {
        FERRY_LOG_LIMITED(log_, ctx_.now_ns, Warn, "%s: %s: %s", upstream_.text, what, detail);
    }
    void unlink(WsUpstreamLeg* leg) noexcept;

    // First, so it is destroyed last: legs still open at shard exit are abandoned with it.
    base::ObjectPool<WsUpstreamLeg> legs_;
    loop::Context& ctx_;
    Metrics& metrics_;
    ServiceUrl upstream_;
    WsUpstreamOptions options_;
    MaskKeys keys_;
    base::LogLimiter log_;
    absl::flat_hash_map<const void*, uint32_t> connecting_;  // per tunnel connection
    WsUpstreamLeg* live_ = nullptr;
    WsUpstreamLeg* deadlines_ = nullptr;
    bool draining_ = false;
};

}  // namespace ferry::role
