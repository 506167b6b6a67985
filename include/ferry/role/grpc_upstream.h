// The terminator's gRPC upstream (--upstream grpc://HOST:PORT or grpcs://): the calls the peer
// opens are made to a real gRPC server over a few HTTP/2 connections (h2c with prior knowledge,
// or TLS 1.3 with ALPN h2, SNI and the certificate checked by the URL's host) that many calls
// share. nghttp2 is the client: HPACK, framing, SETTINGS, flow control and the server's
// MAX_CONCURRENT_STREAMS (calls past it wait in nghttp2's queue) are the library's.
//
// A call: the OPEN's metadata becomes the request head (:path and :authority as the client sent
// them, `-bin` values base64 again, the trail as x-ferry-trail), and the request goes out at
// once; the client's messages follow in DATA frames written with NGHTTP2_DATA_FLAG_NO_COPY from
// the tunnel's buffers (prefix rebuilt, GrpcOutbox), and the tunnel credit returns as they leave.
// The server's response head accepts the stream (OPEN_ACK with its metadata); its messages go
// into the tunnel as slices of our receive buffers (MessageReader, no copy), and its trailers end
// the stream (TRAILERS). A server that answers with an HTTP status other than 200, resets the
// call, or loses the connection ends the call with the gRPC status the gRPC spec maps that to;
// an unreachable server gives UNAVAILABLE. The client cancelling (RESET from the tunnel) cancels
// the upstream call (RST_STREAM CANCEL).
// Back-pressure per call: while the tunnel stream is over its high watermark the call's HTTP/2
// stream window is held back (the connection window is returned at once, so one slow call never
// stalls the others on its connection).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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
#include "ferry/tls/tls_context.h"
#include "ferry/transport/tcp_transport.h"
#include "ferry/transport/tls_transport.h"
#include "ferry/tunnel/stream.h"

struct nghttp2_session;

namespace ferry::role {

struct GrpcUpstreamOptions {
    ProcessLimits* process = nullptr;  // --max-connections, --max-upstream-connects
    uint32_t max_message_size = proto::grpc::kDefaultMaxMessageSize;  // --grpc-max-message
    // HTTP/2 connections per upstream on one shard, and the calls one carries before another
    // opens (the server's own MAX_CONCURRENT_STREAMS still applies: nghttp2 queues past it).
    uint32_t max_connections = 4;
    uint32_t calls_per_connection = 100;
    uint32_t max_header_list_size = 65536;  // response heads and trailers
    uint64_t connect_ns = 5'000'000'000;    // connect and the server's SETTINGS (--connect-timeout)
    std::string node_name;                  // appended to the trail (x-ferry-trail)
    // grpcs:// upstreams: the client TLS of the connections (a foreign_server config).
    std::optional<tls::TlsConfig> tls;
};

class GrpcUpstreams;
class GrpcUpstreamConnection;

// One call: a tunnel stream the peer opened and the HTTP/2 stream it rides upstream.
class GrpcUpstreamCall final : public tunnel::StreamHandler {
  public:
    GrpcUpstreamCall(GrpcUpstreamConnection& conn, tunnel::Stream& stream) noexcept;
    ~GrpcUpstreamCall();

    // Submits the request built from `open`. False when it cannot (nothing then refers to the
    // call, and the stream is untouched).
    [[nodiscard]] bool start(const proto::tunnel::Open& open) noexcept;

    // nghttp2 events of the HTTP/2 stream.
    [[nodiscard]] bool add_header(std::string_view name, std::string_view value) noexcept;
    void on_headers(bool end_stream) noexcept;
    void on_data(const uint8_t* data, size_t len) noexcept;
    void on_data_end() noexcept;
    // The HTTP/2 stream closed (`h2_error` from RST_STREAM, or the connection went with
    // `reason`): the call ends; the owner frees it afterwards.
    void on_closed(uint32_t h2_error, const char* reason) noexcept;
    ssize_t read_request(size_t max, uint32_t* flags) noexcept;
    bool take_request(size_t len) noexcept;

    // MessageSink (response messages, from on_data)
    bool on_message_start(proto::grpc::MessagePrefix prefix) noexcept;
    bool on_message_data(std::span<const std::byte> piece, bool end) noexcept;

    // tunnel::StreamHandler
    void on_stream_data(buf::Chunk&& data, proto::tunnel::DataFlags flags) noexcept override;
    void on_stream_fin() noexcept override;
    void on_stream_reset(proto::tunnel::ErrorCode code) noexcept override;
    void on_stream_writable() noexcept override;

    [[nodiscard]] int32_t id() const noexcept { return id_; }

    // The connection's list of its calls.
    GrpcUpstreamCall* prev = nullptr;
    GrpcUpstreamCall* next = nullptr;

  private:
    struct Field {
        std::string name;
        std::string value;
    };
    // Ends the tunnel side of the call with `status` (TRAILERS), and the upstream side with
    // RST_STREAM CANCEL when it is still open.
    void end_call(proto::grpc::StatusCode status, std::string_view message) noexcept;
    // Ends the tunnel side with these trailers (tunnel form) and lets the stream go.
    void finish_tunnel(std::span<const proto::tunnel::MetadataEntry> trailers) noexcept;
    void cancel_upstream() noexcept;
    void resume_request() noexcept;

    GrpcUpstreamConnection& conn_;
    tunnel::Stream* stream_;
    int32_t id_ = -1;
    std::vector<Field> head_;  // the response head or trailers while nghttp2 decodes them
    size_t head_bytes_ = 0;
    proto::grpc::MessageReader reader_;
    proto::tunnel::MessageKind in_kind_ = proto::tunnel::MessageKind::Binary;
    GrpcOutbox outbox_;              // request messages on their way to DATA frames
    GrpcCallMeter meter_;            // from the submitted request to the status sent back
    uint32_t window_owed_ = 0;       // HTTP/2 stream window held back while the stream is paused
    bool response_started_ = false;  // the response head came (the stream is accepted)
    bool request_fin_ = false;       // the client's request ended (END_STREAM once sent out)
    bool deferred_ = false;          // nghttp2 waits for resume_request()
    bool paused_ = false;
    bool upstream_closed_ = false;  // the HTTP/2 stream is gone

    friend class GrpcUpstreamConnection;
    friend class GrpcUpstreams;
};

class GrpcUpstreamConnection final : public transport::TransportSink,
                                     public loop::Flushable,
                                     public loop::Retirable {
  public:
    GrpcUpstreamConnection(loop::Context& ctx, Metrics& metrics,
                           transport::Metrics& transport_metrics, GrpcUpstreams& owner) noexcept;
    ~GrpcUpstreamConnection() override;

    // Opens the socket and the session and starts the connect. False when no socket or session
    // could be made (the connection then closes itself).
    [[nodiscard]] bool start() noexcept;
    void hold_slots(base::SharedLimit* connection, base::SharedLimit* connect) noexcept {
        slot_ = connection;
        connect_slot_ = connect;
    }
    void tick(uint64_t now_ns) noexcept;
    // Takes no new calls; closes once its calls are done.
    void retire_when_idle() noexcept;

    [[nodiscard]] bool usable() const noexcept { return !closing_ && !goaway_ && !retiring_; }
    [[nodiscard]] uint32_t calls() const noexcept { return calls_count_; }

    // nghttp2 callbacks
    int on_header(int32_t id, std::string_view name, std::string_view value) noexcept;
    int on_frame_recv(uint8_t type, uint8_t flags, int32_t id) noexcept;
    int on_data_chunk(int32_t id, const uint8_t* data, size_t len) noexcept;
    int on_stream_close(int32_t id, uint32_t error_code) noexcept;
    ssize_t on_send(const uint8_t* data, size_t len) noexcept { return out_.copy_frame(data, len); }
    int on_send_data(const uint8_t* framehd, size_t length, GrpcUpstreamCall* call) noexcept;

    void want_flush() noexcept { ctx_.queue_flush(this); }
    void flush() noexcept override;
    void retire() noexcept override;

    // The owner's list of connections.
    GrpcUpstreamConnection* prev = nullptr;
    GrpcUpstreamConnection* next = nullptr;

  private:
    friend class GrpcUpstreamCall;
    friend class GrpcUpstreams;

    // TransportSink
    void on_transport_established() noexcept override;
    void on_transport_read(buf::Chunk&& bytes) noexcept override;
    void on_transport_written() noexcept override;
    void on_transport_down(const char* reason, int err) noexcept override;
    void on_transport_quiescent() noexcept override;

    void link(GrpcUpstreamCall* call) noexcept;
    void unlink(GrpcUpstreamCall* call) noexcept;
    // Ends every call with `reason` (UNAVAILABLE) and the connection.
    void close(const char* reason) noexcept;
    void connect_over() noexcept;

    loop::Context& ctx_;
    Metrics& metrics_;
    GrpcUpstreams& owner_;
    transport::TcpTransport tcp_;
    std::unique_ptr<transport::TlsTransport> tls_;  // grpcs:// only, over tcp_
    transport::Transport* conn_ = &tcp_;            // what HTTP/2 reads and writes
    nghttp2_session* session_ = nullptr;
    H2Output out_;
    GrpcUpstreamCall* calls_ = nullptr;
    uint32_t calls_count_ = 0;
    buf::Chunk* reading_ = nullptr;  // the receive buffer nghttp2 is reading (to slice DATA)
    uint64_t deadline_ns_ = 0;       // connected and the server's SETTINGS by then (0: done)
    bool connected_ = false;         // the socket, and with TLS its handshake, are done
    bool tls_started_ = false;
    bool goaway_ = false;    // the server sent GOAWAY: no new calls here
    bool retiring_ = false;  // ours: close once idle
    bool closing_ = false;
    base::SharedLimit* slot_ = nullptr;
    base::SharedLimit* connect_slot_ = nullptr;
};

class GrpcUpstreams final : public UpstreamProtocol {
  public:
    GrpcUpstreams(loop::Context& ctx, Metrics& metrics, transport::Metrics& transport_metrics,
                  ServiceUrl upstream, GrpcUpstreamOptions options) noexcept;
    // At shard exit: frees the sessions and queues of connections still open.
    ~GrpcUpstreams() override;

    [[nodiscard]] tunnel::OpenDecision open(tunnel::Session& session, tunnel::Stream& stream,
                                            const proto::tunnel::Open& open) noexcept override;
    // grpcs://: builds the TLS context (the CA file or the system's store); the error names why.
    [[nodiscard]] absl::Status prepare() noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    void drain() noexcept override;
    [[nodiscard]] bool idle() const noexcept override { return calls_ == 0; }

    [[nodiscard]] const GrpcUpstreamOptions& options() const noexcept { return options_; }
    [[nodiscard]] const ServiceUrl& upstream() const noexcept { return upstream_; }
    void log_failure(const char* what, std::string_view detail) noexcept {
        FERRY_LOG_LIMITED(log_, ctx_.now_ns, Warn, "grpc upstream %s: %s: %.*s", upstream_.text,
                          what, static_cast<int>(detail.size()), detail.data());
    }

  private:
    friend class GrpcUpstreamConnection;
    friend class GrpcUpstreamCall;

    // The connection a new call goes to: the least loaded usable one under the per-connection
    // mark, else a new one (within the limits), else the least loaded usable one; nullptr when
    // none can be had.
    GrpcUpstreamConnection* pick() noexcept;
    void unlink(GrpcUpstreamConnection* c) noexcept;

    // First, so they are destroyed last.
    base::ObjectPool<GrpcUpstreamConnection> connections_pool_;
    base::ObjectPool<GrpcUpstreamCall> calls_pool_;
    loop::Context& ctx_;
    Metrics& metrics_;
    transport::Metrics& transport_metrics_;
    ServiceUrl upstream_;
    GrpcUpstreamOptions options_;
    std::unique_ptr<tls::TlsContext> tls_;  // grpcs:// only (prepare())
    base::LogLimiter log_;
    GrpcUpstreamConnection* connections_ = nullptr;
    uint32_t connection_count_ = 0;
    uint64_t calls_ = 0;
    bool draining_ = false;
};

}  // namespace ferry::role
