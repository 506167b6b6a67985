// GrpcTransport: the tunnel's byte stream carried in one bidirectional gRPC stream (HTTP/2 via
// nghttp2, cleartext prior knowledge) over a lower Transport (TCP), for networks whose load
// balancers pass only gRPC / HTTP/2. The TlsTransport sits on top: mutual TLS 1.3 runs inside the
// stream, in user space (a framed stream never takes kernel TLS, so raw_socket() is null).
//
// Client (initiator): the connection preface and SETTINGS, then one POST to `path` with
// content-type application/grpc and te: trailers; established once the response HEADERS
// (:status 200, application/grpc) arrive. Server (terminator): takes h2c prior knowledge and
// exactly one stream at exactly `path` (another path: trailers-only grpc-status 12 UNIMPLEMENTED,
// then GOAWAY and close; not HTTP/2 at all: GOAWAY and close), answers 200 application/grpc.
//
// Each write goes out as ferry.tunnel.v1.Chunk messages (proto/tunnel.proto): a 5-byte gRPC
// prefix and a 1-6 byte field header of ours, then the writer's own iovecs (DATA frames with
// NGHTTP2_DATA_FLAG_NO_COPY: zero-copy). Incoming Chunks are parsed across DATA frames and handed
// up as slices of the receive buffer. HTTP/2 windows are large (16 MiB: the tunnel's own credit
// is what limits streams); bytes are consumed (WINDOW_UPDATE) only when handed up while reading
// is not paused, so back-pressure still reaches the peer.
//
// shutdown_write(): END_STREAM (client) or trailers grpc-status 0 (server); reading goes on. The
// peer's end of the stream, its GOAWAY or RST_STREAM end reading: we end our side (when we had
// not), send GOAWAY and close once that is out.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ferry/io/buffer_wait.h"
#include "ferry/loop/context.h"
#include "ferry/proto/grpc/tunnel_chunk.h"
#include "ferry/transport/metrics.h"
#include "ferry/transport/transport.h"

struct nghttp2_session;

namespace ferry::transport {

inline constexpr std::string_view kDefaultTunnelGrpcPath = "/ferry.tunnel.v1.Tunnel/Carry";

struct GrpcOptions {
    bool is_server = false;
    // The call's :path (client) or the only one accepted (server).
    std::string path = std::string(kDefaultTunnelGrpcPath);
    std::string authority = "ferry";  // the client's :authority
    // Largest Chunk payload we send (gRPC's default receive limit is 4 MiB); one message per
    // write unless the write is larger.
    uint32_t max_message = uint32_t{1} << 20;
    // Largest message we accept.
    uint32_t max_receive_message = proto::grpc::kDefaultMaxMessageSize;
    // Our stream and connection receive windows (16 MiB: the tunnel's own credit rules).
    uint32_t window = uint32_t{16} << 20;
    // SETTINGS_MAX_FRAME_SIZE we offer; our DATA frames follow the peer's.
    uint32_t max_frame_size = uint32_t{1} << 20;
};

class GrpcTransport final : public Transport, private TransportSink, private io::BufferWaiter {
  public:
    // Runs the gRPC stream over `lower` (owned; started by start()). `metrics` outlives it.
    GrpcTransport(loop::Context& ctx, Metrics& metrics, std::unique_ptr<Transport> lower,
                  GrpcOptions options) noexcept;
    ~GrpcTransport() override;

    void start(TransportSink* sink) noexcept override;
    void write(iovec* iov, uint32_t count, uint64_t bytes) noexcept override;
    void pause_reading() noexcept override;
    void resume_reading() noexcept override;
    void close() noexcept override;
    void shutdown_write() noexcept override;
    [[nodiscard]] const char* kind() const noexcept override { return "grpc"; }
    [[nodiscard]] bool established() const noexcept override { return phase_ == Phase::Open; }
    // Never a raw socket: the bytes above are framed in user space.
    [[nodiscard]] io::SocketIo* raw_socket() noexcept override { return nullptr; }

    // nghttp2's callbacks land here (the C trampolines in the .cc).
    struct Callbacks;

  private:
    enum class Phase : uint8_t { Handshake, Open, Refused };

    // Where the next Chunk bytes come from: the writer's iovecs and our message headers.
    struct Cursor {
        uint32_t index = 0;        // writer iovec
        size_t offset = 0;         // bytes of it taken
        uint64_t unframed = 0;     // writer bytes not yet in a message
        uint32_t msg_left = 0;     // payload bytes of the current message not yet taken
        uint32_t header_slot = 0;  // headers_[] of the current message
        uint8_t header_len = 0;
        uint8_t header_off = 0;  // header bytes taken
        [[nodiscard]] bool empty() const noexcept {
            return unframed == 0 && msg_left == 0 && header_off == header_len;
        }
    };

    // Receives the Chunks' bytes, synchronously inside ChunkReader::feed.
    struct ChunkEvents {
        GrpcTransport* t;
        bool on_chunk_data(std::span<const std::byte> bytes) noexcept {
            return t->on_chunk_data(bytes);
        }
    };

    // From the lower transport.
    void on_transport_read(buf::Chunk&& bytes) noexcept override;
    void on_transport_written() noexcept override;
    void on_transport_down(const char* reason, int err) noexcept override;
    void on_transport_quiescent() noexcept override;
    void on_transport_read_stopped() noexcept override { sink_->on_transport_read_stopped(); }
    void retry_after_buffer_wait() noexcept override {
        resume_data();
        output();
    }

    // nghttp2 events.
    [[nodiscard]] ssize_t on_send(const uint8_t* data, size_t len) noexcept;
    [[nodiscard]] int on_send_data(const uint8_t* framehd, size_t length) noexcept;
    [[nodiscard]] ssize_t on_read_data(size_t length, uint32_t* flags) noexcept;
    [[nodiscard]] int on_begin_headers(int32_t id) noexcept;
    [[nodiscard]] int on_header(int32_t id, std::string_view name, std::string_view value) noexcept;
    [[nodiscard]] int on_frame_recv(uint8_t type, uint8_t flags, int32_t id) noexcept;
    [[nodiscard]] int on_data_chunk(int32_t id, const uint8_t* data, size_t len) noexcept;
    [[nodiscard]] int on_stream_close(int32_t id, uint32_t error_code) noexcept;
    bool on_chunk_data(std::span<const std::byte> bytes) noexcept;

    [[nodiscard]] bool make_session() noexcept;
    void submit_request() noexcept;
    void request_headers_done() noexcept;
    void response_headers_done(bool end_stream) noexcept;
    void refuse(const char* status, const char* grpc_status, const char* reason) noexcept;
    void opened() noexcept;
    // The peer ended the stream (or the connection): end ours if we had not, then close.
    void peer_ended(const char* reason) noexcept;
    void end_our_side() noexcept;
    void fail(uint32_t h2_error, const char* detail) noexcept;
    // Copies `len` bytes into the staging buffer as the next output; false when out of room.
    [[nodiscard]] bool stage(const uint8_t* data, size_t len) noexcept;
    // Takes up to `max` Chunk bytes at `c`; `emit` puts them into out_ (else only counts).
    uint64_t walk(Cursor& c, uint64_t max, uint32_t iov_cap, uint32_t& slots, bool emit) noexcept;
    // Runs nghttp2's output, then starts the lower write of it.
    void send_next() noexcept;
    // send_next(), then down() when closing and all is out; nothing inside nghttp2's input.
    void output() noexcept;
    [[nodiscard]] bool have_staging() noexcept;
    // Lets nghttp2 ask for DATA again when some waits (our bytes or our end of the call).
    void resume_data() noexcept;
    void writer_done() noexcept;
    void consume(size_t n) noexcept;
    void down(const char* reason, int err) noexcept;
    void close_when_sent(const char* reason) noexcept;

    loop::Context& ctx_;
    Metrics& metrics_;
    std::unique_ptr<Transport> lower_;
    GrpcOptions options_;
    TransportSink* sink_ = nullptr;
    Phase phase_ = Phase::Handshake;
    nghttp2_session* session_ = nullptr;
    int32_t stream_id_ = 0;  // the tunnel's stream, 0 before it exists
    proto::grpc::ChunkReader reader_;
    buf::Chunk* reading_ = nullptr;  // the receive buffer nghttp2 is parsing
    size_t handed_ = 0;              // bytes of the current DATA piece handed up
    bool in_recv_ = false;           // inside nghttp2_session_mem_recv

    // The request or response head being received (the fields that matter).
    int http_status_ = 0;
    int grpc_status_ = -1;  // -1: none
    bool path_ok_ = false;
    bool method_ok_ = false;
    bool grpc_content_ = false;

    // The writer's batch: borrowed until writer_done().
    iovec* writer_iov_ = nullptr;
    uint32_t writer_count_ = 0;
    bool writer_active_ = false;
    Cursor cursor_;

    // The output of one lower write: nghttp2's frames copied into `staging_` and the writer's
    // iovecs with our message headers between them. All reused once the write is done.
    static constexpr uint32_t kMaxOut = WriteBatch::kMaxIov * 2 + 64;
    static constexpr uint32_t kMaxHeaders = 64;
    iovec out_[kMaxOut];
    uint32_t out_count_ = 0;
    uint64_t out_bytes_ = 0;
    std::byte headers_[kMaxHeaders][proto::grpc::kMaxChunkHeaderSize];
    uint32_t headers_used_ = 0;
    buf::Chunk staging_;
    uint32_t staging_used_ = 0;
    bool lower_writing_ = false;
    bool data_deferred_ = false;  // nghttp2 holds our DATA until resume_data

    uint64_t owed_ = 0;  // bytes handed up while paused, consumed on resume
    bool paused_ = false;
    bool our_end_ = false;       // shutdown_write() asked for END_STREAM / trailers
    bool our_end_sent_ = false;  // they were handed to nghttp2
    bool peer_end_ = false;      // the peer ended its side
    const char* close_reason_ = nullptr;
    bool down_ = false;
};

}  // namespace ferry::transport
