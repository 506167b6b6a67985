// WsTransport: the tunnel's byte stream carried as binary WebSocket messages (RFC 6455) over a
// lower Transport (TCP), for networks whose load balancers pass only HTTP and WebSocket. The
// TlsTransport sits on top: mutual TLS 1.3 runs inside the WebSocket, in user space (a framed
// stream never takes kernel TLS, so raw_socket() is null).
//
// Client (initiator): sends the Upgrade (GET path, Sec-WebSocket-Protocol: ferry-tunnel, a fresh
// random key), checks the 101, then reports established. Its frames are masked with keys drawn
// from the kernel CSPRNG; masking cannot happen in place (the payload belongs to the writer), so
// the writer's bytes are copied, masked, into pool buffers, one frame per buffer.
// Server (terminator): checks the Upgrade (wrong path: 404, bad upgrade: 400, then close),
// answers 101 with ferry-tunnel. Its frames are unmasked: a frame header, then the writer's
// iovecs as they are (zero-copy). Incoming masked frames are unmasked in place by the codec and
// handed up as slices of the receive buffer.
//
// Ping is answered with Pong; a Close ends reading and is answered with a Close carrying its code;
// protocol errors close with 1002, a text frame with 1003. shutdown_write() sends a Close, then
// shuts the lower transport down.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "ferry/io/buffer_wait.h"
#include "ferry/loop/context.h"
#include "ferry/proto/http1/request_parser.h"
#include "ferry/proto/ws/frame.h"
#include "ferry/proto/ws/frame_parser.h"
#include "ferry/proto/ws/mask.h"
#include "ferry/proto/ws/response_head_parser.h"
#include "ferry/transport/metrics.h"
#include "ferry/transport/transport.h"

namespace ferry::transport {

// The subprotocol both ends of a tunnel WebSocket insist on.
inline constexpr std::string_view kTunnelSubprotocol = "ferry-tunnel";
inline constexpr std::string_view kDefaultTunnelWsPath = "/ferry/tunnel";

struct WsOptions {
    bool is_server = false;
    std::string path = std::string(kDefaultTunnelWsPath);  // request target (client) or the one
                                                           // accepted (server)
    std::string host = "ferry";                            // the client's Host field
    // Largest payload of one frame we send. The server's frames are one header in front of the
    // writer's own iovecs, so bigger frames cost nothing; a client frame also never exceeds one
    // pool buffer.
    uint64_t max_frame_payload = uint64_t{1} << 20;
};

// Masking keys (RFC 6455 §5.3: unpredictable, one per frame) drawn from getrandom(2) a block at a
// time: one syscall per 64 frames.
class MaskKeySource final {
  public:
    [[nodiscard]] proto::ws::MaskKey next() noexcept;
    // Fills `out` from the kernel CSPRNG (at most 256 bytes).
    static void fill(std::span<std::byte> out) noexcept;

  private:
    std::array<std::byte, 256> block_{};
    size_t used_ = 256;
};

class WsTransport final : public Transport, private TransportSink, private io::BufferWaiter {
  public:
    // Runs WebSocket framing over `lower` (owned; started by start()). `metrics` outlives it.
    WsTransport(loop::Context& ctx, Metrics& metrics, std::unique_ptr<Transport> lower,
                WsOptions options) noexcept;
    ~WsTransport() override;

    void start(TransportSink* sink) noexcept override;
    void write(iovec* iov, uint32_t count, uint64_t bytes) noexcept override;
    void pause_reading() noexcept override { lower_->pause_reading(); }
    void resume_reading() noexcept override { lower_->resume_reading(); }
    void close() noexcept override;
    void shutdown_write() noexcept override;
    [[nodiscard]] const char* kind() const noexcept override { return "ws"; }
    [[nodiscard]] bool established() const noexcept override { return phase_ == Phase::Open; }
    // Never a raw socket: the bytes above are framed in user space.
    [[nodiscard]] io::SocketIo* raw_socket() noexcept override { return nullptr; }

  private:
    enum class Phase : uint8_t { Handshake, Open, Refused };

    // Receives parsed frames, synchronously inside FrameParser::feed.
    struct FrameEvents {
        WsTransport* t;
        const buf::Chunk* chunk;  // the receive buffer the pieces are views of
        void on_message_start(proto::ws::Opcode op) noexcept;
        bool on_data(std::span<const std::byte> bytes, bool fin) noexcept;
        bool on_control(proto::ws::Opcode op, std::span<const std::byte> payload) noexcept;
    };

    // From the lower transport.
    void on_transport_read(buf::Chunk&& bytes) noexcept override;
    void on_transport_written() noexcept override;
    void on_transport_down(const char* reason, int err) noexcept override;
    void on_transport_quiescent() noexcept override;
    void on_transport_read_stopped() noexcept override { sink_->on_transport_read_stopped(); }
    void retry_after_buffer_wait() noexcept override { send_next(); }

    void send_request() noexcept;
    // Handshake input; returns the offset of the first frame byte in `bytes`, or its size.
    [[nodiscard]] size_t server_handshake(const buf::Chunk& bytes) noexcept;
    [[nodiscard]] size_t client_handshake(const buf::Chunk& bytes) noexcept;
    void refuse(int http_status, const char* reason) noexcept;
    void upgraded() noexcept;
    void frames(buf::Chunk& bytes, size_t offset) noexcept;
    // Queues a control frame (masked when we are the client); false when no buffer was free.
    bool queue_control(proto::ws::Opcode op, std::span<const std::byte> payload) noexcept;
    void fail(proto::ws::CloseCode code, const char* detail) noexcept;
    void queue_close(proto::ws::CloseCode code, const char* reason) noexcept;
    // Starts the next lower write: queued frames of ours, then frames of the writer's bytes.
    void send_next() noexcept;
    // Client: copies the next part of the writer's bytes, masked, into pool-buffer frames.
    void frame_masked() noexcept;
    // Server: frame headers and slices of the writer's iovecs into out_; returns the bytes.
    [[nodiscard]] uint64_t frame_in_place(uint32_t& n) noexcept;
    void writer_done() noexcept;
    void down(const char* reason, int err) noexcept;
    void close_when_sent(const char* reason) noexcept;

    loop::Context& ctx_;
    Metrics& metrics_;
    std::unique_ptr<Transport> lower_;
    WsOptions options_;
    TransportSink* sink_ = nullptr;
    Phase phase_ = Phase::Handshake;

    // The opening handshake (dropped once it is over).
    std::unique_ptr<proto::http1::RequestParser> request_;
    std::unique_ptr<proto::ws::ResponseHeadParser> response_;
    std::array<char, 24> client_key_{};
    proto::ws::FrameParser parser_;
    MaskKeySource keys_;

    // Our own frames (handshake, control; the client's masked data) waiting or in flight.
    buf::ChunkQueue tx_;
    // The writer's batch: borrowed until writer_done(). The server frames it in place.
    iovec* writer_iov_ = nullptr;
    uint32_t writer_count_ = 0;
    uint32_t writer_index_ = 0;  // the next iovec to frame
    size_t writer_offset_ = 0;   // bytes of it already framed
    uint64_t writer_left_ = 0;   // bytes not framed yet
    bool writer_active_ = false;

    static constexpr uint32_t kMaxIov = WriteBatch::kMaxIov + 8;
    static constexpr uint32_t kMaxHeaders = 32;
    iovec out_[kMaxIov];
    std::byte headers_[kMaxHeaders][proto::ws::kMaxFrameHeaderSize];
    uint64_t sending_own_ = 0;  // bytes of tx_ in the lower write
    bool lower_writing_ = false;

    const char* close_reason_ = nullptr;  // set once we decided to close after our frames
    bool close_queued_ = false;           // our Close frame is queued or sent
    bool shutdown_after_close_ = false;   // shutdown_write(): FIN once the Close is out
    bool text_message_ = false;           // the peer started a text message (1003)
    bool down_ = false;
};

}  // namespace ferry::transport
