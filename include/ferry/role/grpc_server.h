// The gRPC protocol handler of the initiator: each client connection on a grpc:// listener is one
// HTTP/2 server session (nghttp2: framing, HPACK, SETTINGS, flow control and its abuse limits are
// the library's), and each call on it is one tunnel message stream.
//
// Client -> tunnel: nghttp2 hands DATA payload as views of our receive buffer; MessageReader cuts
// them into gRPC messages, and each piece goes to the stream as a slice of that buffer (no copy),
// without its 5-byte prefix: the compressed flag becomes the message kind (tunnel protocol §6.3).
// Tunnel -> client: a message's pieces wait (as slices) until it ends, then its rebuilt prefix and
// the pieces leave in DATA frames written with NGHTTP2_DATA_FLAG_NO_COPY: the frame header is
// copied into a staging buffer, the payload is the tunnel's buffers. Frames of all calls of a
// connection go out in one gathered write per loop iteration (loop::Flushable).
// Back-pressure: a call whose stream is over its high watermark stops returning its HTTP/2
// stream window (the connection window is returned at once, so one slow call never stalls the
// others); tunnel credit for a message returns once its bytes went into a DATA frame.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/base/log.h"
#include "ferry/base/object_pool.h"
#include "ferry/base/shared_limit.h"
#include "ferry/loop/context.h"
#include "ferry/proto/grpc/message_reader.h"
#include "ferry/proto/grpc/status.h"
#include "ferry/role/h2_output.h"
#include "ferry/role/limits.h"
#include "ferry/role/metrics.h"
#include "ferry/role/protocol.h"
#include "ferry/role/route_key.h"
#include "ferry/role/tunnel_security.h"
#include "ferry/tls/tls_context.h"
#include "ferry/transport/tcp_transport.h"
#include "ferry/transport/tls_transport.h"
#include "ferry/tunnel/stream.h"

struct nghttp2_session;

namespace ferry::role {

struct GrpcClientOptions {
    ProcessLimits* process = nullptr;  // --max-connections, shared by every shard
    uint32_t max_message_size = proto::grpc::kDefaultMaxMessageSize;  // --grpc-max-message
    uint32_t max_concurrent_streams = 1024;                           // --grpc-max-streams
    uint32_t max_header_list_size = 16384;  // request headers above this: RESOURCE_EXHAUSTED
    uint64_t handshake_ns = 5'000'000'000;  // the client's preface within this
    std::string node_name;                  // this node's entry in the OPEN's "trail"
    RouteKeyRule route_key;                 // --route-key (header: a metadata key)
    // grpcs:// listeners: TLS with ALPN h2 (the certificate of --listen-tls-cert).
    bool serves_tls = false;
    tls::TlsConfig listener_tls;
};

class GrpcClients;
class GrpcConnection;

// One call: an HTTP/2 stream of a client connection and the tunnel stream it rides.
class GrpcCall final : public tunnel::StreamHandler {
  public:
    GrpcCall(GrpcConnection& conn, int32_t id) noexcept;
    ~GrpcCall();

    // Request head, as nghttp2 decodes it. False when the list is over the limit.
    [[nodiscard]] bool add_header(std::string_view name, std::string_view value) noexcept;
    // The request head is complete: checks it and opens the tunnel stream, or answers.
    void on_request_headers() noexcept;
    // DATA payload: a view of the connection's current receive buffer.
    void on_request_data(const uint8_t* data, size_t len) noexcept;
    // END_STREAM from the client.
    void on_request_end() noexcept;
    // The HTTP/2 stream closed (answered, reset by the client, or the connection went).
    void on_closed(uint32_t h2_error) noexcept;
    // grpc-timeout passed: DEADLINE_EXCEEDED to the client, Timeout to the far side.
    void on_deadline() noexcept;

    // nghttp2 data source: how many response bytes are ready (NO_COPY), or deferral/EOF.
    ssize_t read_response(size_t max, uint32_t* flags) noexcept;
    // Moves `len` ready bytes into the connection's output (after their frame header).
    bool take_response(size_t len) noexcept;

    // tunnel::StreamHandler
    void on_stream_data(buf::Chunk&& data, proto::tunnel::DataFlags flags) noexcept override;
    void on_stream_fin() noexcept override;
    void on_stream_trailers(const proto::tunnel::MetadataView& trailers) noexcept override;
    void on_stream_accepted(const proto::tunnel::MetadataView& metadata) noexcept override;
    void on_stream_reset(proto::tunnel::ErrorCode code) noexcept override;
    void on_stream_writable() noexcept override;

    [[nodiscard]] int32_t id() const noexcept { return id_; }
    [[nodiscard]] uint64_t deadline_ns() const noexcept { return deadline_ns_; }

    // MessageSink (client messages, from on_request_data)
    bool on_message_start(proto::grpc::MessagePrefix prefix) noexcept;
    bool on_message_data(std::span<const std::byte> piece, bool end) noexcept;

    // The connection's list of its calls.
    GrpcCall* prev = nullptr;
    GrpcCall* next = nullptr;

  private:
    struct Field {
        std::string name;
        std::string value;
    };
    // Ends the call with `status` and `message` (trailers, or a trailers-only response when no
    // headers went out yet); the tunnel stream, if any, is reset with `code`.
    void fail(proto::grpc::StatusCode status, std::string_view message,
              proto::tunnel::ErrorCode code) noexcept;
    // Sends the response headers (200, content-type and the far side's metadata) once.
    void start_response(const proto::tunnel::MetadataView* metadata) noexcept;
    // Queues trailers to go after the queued messages.
    void set_trailers(std::vector<Field>&& trailers) noexcept;
    void resume() noexcept;
    void give_window() noexcept;
    void drop_stream(proto::tunnel::ErrorCode code) noexcept;

    GrpcConnection& conn_;
    int32_t id_;
    tunnel::Stream* stream_ = nullptr;
    std::vector<Field> request_;  // the head while it is read; dropped once the stream opened
    size_t request_bytes_ = 0;
    proto::grpc::MessageReader reader_;
    proto::tunnel::MessageKind in_kind_ = proto::tunnel::MessageKind::Binary;
    // Response messages on their way to DATA frames.
    GrpcOutbox outbox_;
    GrpcCallMeter meter_;  // from a valid gRPC request head to the status it ends with
    std::vector<Field> trailers_;
    uint64_t deadline_ns_ = 0;
    uint32_t window_owed_ = 0;  // HTTP/2 stream window held back while the stream is paused
    bool headers_sent_ = false;
    bool trailers_ready_ = false;  // trailers_ go once ready_ is empty
    bool response_done_ = false;   // trailers (or a trailers-only answer) submitted
    bool request_ended_ = false;
    bool deferred_ = false;  // nghttp2 waits for resume() before asking read_response again
    bool paused_ = false;

    friend class GrpcConnection;
    friend class GrpcClients;
};

class GrpcConnection final : public transport::TransportSink,
                             public loop::Flushable,
                             public loop::Retirable {
  public:
    GrpcConnection(loop::Context& ctx, Metrics& metrics, transport::Metrics& transport_metrics,
                   GrpcClients& owner) noexcept;
    ~GrpcConnection() override;

    // `tls`: a grpcs:// listener's context (TLS over the socket), or nullptr for h2c.
    void start(int fd, const tls::TlsContext* tls) noexcept;
    void reject(int fd) noexcept;
    void hold_slot(base::SharedLimit* limit) noexcept { slot_ = limit; }
    // Stop taking calls (GOAWAY); open ones finish.
    void drain() noexcept;
    void tick(uint64_t now_ns) noexcept;

    // nghttp2 callbacks
    int on_begin_frame(uint8_t type, int32_t id) noexcept;
    int on_begin_headers(int32_t id) noexcept;
    int on_header(int32_t id, std::string_view name, std::string_view value) noexcept;
    int on_frame_recv(uint8_t type, uint8_t flags, int32_t id) noexcept;
    int on_data_chunk(int32_t id, const uint8_t* data, size_t len) noexcept;
    int on_stream_close(int32_t id, uint32_t error_code) noexcept;
    ssize_t on_send(const uint8_t* data, size_t len) noexcept;
    int on_send_data(const uint8_t* framehd, size_t length, GrpcCall* call) noexcept;

    // Calls ask for a flush when they queued something for nghttp2.
    void want_flush() noexcept { ctx_.queue_flush(this); }
    void flush() noexcept override;
    void retire() noexcept override;

    // The owner's list of connections.
    GrpcConnection* prev = nullptr;
    GrpcConnection* next = nullptr;

  private:
    friend class GrpcCall;
    friend class GrpcClients;

    // TransportSink
    void on_transport_read(buf::Chunk&& bytes) noexcept override;
    void on_transport_written() noexcept override;
    void on_transport_down(const char* reason, int err) noexcept override;
    void on_transport_quiescent() noexcept override;
    void on_transport_established() noexcept override { want_flush(); }

    void close() noexcept;
    // One RST_STREAM from the client against the rapid-reset budget; false once it is spent.
    [[nodiscard]] bool take_reset_token() noexcept;

    // RST_STREAMs a client may send: this many at once, then this many a second (a client
    // cancelling every call of a full connection, 1024 by default, stays inside).
    static constexpr uint32_t kResetBurst = 2000;
    static constexpr uint32_t kResetsPerSecond = 100;

    loop::Context& ctx_;
    Metrics& metrics_;
    GrpcClients& owner_;
    transport::TcpTransport tcp_;
    std::unique_ptr<transport::TlsTransport> tls_;  // grpcs:// only
    transport::Transport* conn_ = &tcp_;
    nghttp2_session* session_ = nullptr;
    GrpcCall* calls_ = nullptr;
    buf::Chunk* reading_ = nullptr;  // the receive buffer nghttp2 is reading (to slice DATA)
    H2Output out_;
    uint64_t deadline_ns_ = 0;  // the preface must come by then (0: it came)
    uint64_t reset_refill_ns_ = 0;
    uint32_t reset_tokens_ = kResetBurst;
    // At the start of a SETTINGS frame: the client's initial window and the largest window of
    // a stream it has open towards us (to catch an overflowing change, RFC 9113 §6.9.2).
    uint32_t initial_window_before_ = 0;
    int32_t largest_window_before_ = 0;
    bool closing_ = false;
    bool draining_ = false;
    base::SharedLimit* slot_ = nullptr;
};

class GrpcClients final : public ClientProtocol {
  public:
    GrpcClients(loop::Context& ctx, Metrics& metrics, transport::Metrics& transport_metrics,
                StreamOpener& opener, GrpcClientOptions options) noexcept;
    ~GrpcClients() override;

    void on_client(int fd, const ServiceUrl& listener) noexcept override;
    [[nodiscard]] absl::Status prepare() noexcept override;
    void reload() noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void drain() noexcept override;
    [[nodiscard]] bool idle() const noexcept override { return connections_ == nullptr; }

    [[nodiscard]] const GrpcClientOptions& options() const noexcept { return options_; }
    [[nodiscard]] StreamOpener& opener() noexcept { return opener_; }
    [[nodiscard]] bool draining() const noexcept { return draining_; }
    void log_refusal(const char* what, std::string_view detail) noexcept {
        FERRY_LOG_LIMITED(refusal_log_, ctx_.now_ns, Warn, "%s: %s", what, detail);
    }

  private:
    friend class GrpcConnection;
    friend class GrpcCall;

    void unlink(GrpcConnection* c) noexcept;

    // First, so they are destroyed last.
    base::ObjectPool<GrpcConnection> connections_pool_;
    base::ObjectPool<GrpcCall> calls_pool_;
    loop::Context& ctx_;
    Metrics& metrics_;
    transport::Metrics& transport_metrics_;
    StreamOpener& opener_;
    GrpcClientOptions options_;
    base::LogLimiter refusal_log_;
    GrpcConnection* connections_ = nullptr;
    // grpcs:// listeners: this shard's TLS context, re-read when its files change.
    std::unique_ptr<ShardTls> tls_;
    bool draining_ = false;
};

}  // namespace ferry::role
