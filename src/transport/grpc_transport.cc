#include "ferry/transport/grpc_transport.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "ferry/base/check.h"
#include "ferry/base/log.h"
#include "ferry/proto/grpc/wire.h"

namespace ferry::transport {

namespace grpc = proto::grpc;

namespace {

GrpcTransport* of(void* user) { return static_cast<GrpcTransport*>(user); }

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

nghttp2_nv nv(std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP2_NV_FLAG_NO_COPY_NAME};
}

int to_int(std::string_view text) {
    int v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    return ec == std::errc() && end == text.data() + text.size() ? v : -2;
}

}  // namespace

// The C trampolines nghttp2 calls; each forwards to the transport in `user`.
struct GrpcTransport::Callbacks {
    static ssize_t send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user) {
        return of(user)->on_send(data, len);
    }
    static int send_data(nghttp2_session*, nghttp2_frame*, const uint8_t* framehd, size_t length,
                         nghttp2_data_source*, void* user) {
        return of(user)->on_send_data(framehd, length);
    }
    static ssize_t read_data(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                             nghttp2_data_source*, void* user) {
        return of(user)->on_read_data(length, flags);
    }
    static ssize_t read_length(nghttp2_session*, uint8_t, int32_t, int32_t session_window,
                               int32_t stream_window, uint32_t max_frame, void*) {
        // Frames as large as the peer takes: fewer headers and callbacks per byte.
        return std::max<ssize_t>(
            1, std::min<ssize_t>({session_window, stream_window, ssize_t{max_frame}}));
    }
    static int begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
        return frame->hd.type == NGHTTP2_HEADERS ? of(user)->on_begin_headers(frame->hd.stream_id)
                                                 : 0;
    }
    static int header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
        if (frame->hd.type != NGHTTP2_HEADERS) {
            return 0;
        }
        return of(user)->on_header(frame->hd.stream_id, view(name, namelen), view(value, valuelen));
    }
    static int frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
        return of(user)->on_frame_recv(frame->hd.type, frame->hd.flags, frame->hd.stream_id);
    }
    static int data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                          void* user) {
        return of(user)->on_data_chunk(id, data, len);
    }
    static int stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user) {
        return of(user)->on_stream_close(id, error_code);
    }

    static nghttp2_session_callbacks* get() {
        static nghttp2_session_callbacks* callbacks = [] {
            nghttp2_session_callbacks* cbs = nullptr;
            FERRY_CHECK(nghttp2_session_callbacks_new(&cbs) == 0);
            nghttp2_session_callbacks_set_send_callback(cbs, send);
            nghttp2_session_callbacks_set_send_data_callback(cbs, send_data);
            nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, read_length);
            nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, begin_headers);
            nghttp2_session_callbacks_set_on_header_callback(cbs, header);
            nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, frame_recv);
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, data_chunk);
            nghttp2_session_callbacks_set_on_stream_close_callback(cbs, stream_close);
            return cbs;
        }();
        return callbacks;
    }
};

GrpcTransport::GrpcTransport(loop::Context& ctx, Metrics& metrics, std::unique_ptr<Transport> lower,
                             GrpcOptions options) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      lower_(std::move(lower)),
      options_(std::move(options)),
      reader_(options_.max_receive_message) {}

GrpcTransport::~GrpcTransport() {
    ctx_.buffer_waits.cancel(this);
    if (session_ != nullptr) {
        nghttp2_session_del(session_);
    }
}

bool GrpcTransport::make_session() noexcept {
    nghttp2_option* option = nullptr;
    if (nghttp2_option_new(&option) != 0) {
        return false;
    }
    // Windows return as the layer above takes the bytes (back-pressure), not as they arrive.
    nghttp2_option_set_no_auto_window_update(option, 1);
    const int rv = options_.is_server
                       ? nghttp2_session_server_new2(&session_, Callbacks::get(), this, option)
                       : nghttp2_session_client_new2(&session_, Callbacks::get(), this, option);
    nghttp2_option_del(option);
    if (rv != 0) {
        session_ = nullptr;
        return false;
    }
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options_.window},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, options_.max_frame_size},
    };
    // ENABLE_PUSH is a client's setting only (RFC 9113 §6.5.2).
    const nghttp2_settings_entry* first = options_.is_server ? settings + 1 : settings;
    const size_t count = options_.is_server ? 3 : 4;
    if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, first, count) != 0 ||
        nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                              static_cast<int32_t>(options_.window)) != 0) {
        return false;
    }
    return true;
}

void GrpcTransport::start(TransportSink* sink) noexcept {
    sink_ = sink;
    lower_->start(this);
    if (!make_session()) {
        down("no HTTP/2 session for the gRPC tunnel", 0);
        return;
    }
    if (!options_.is_server) {
        submit_request();
    }
    output();
}

// ---- the call's heads (gRPC over HTTP/2: PROTOCOL-HTTP2.md) -------------------------------------

void GrpcTransport::submit_request() noexcept {
    const nghttp2_nv head[] = {
        nv(":method", "POST"),
        nv(":scheme", "http"),
        nv(":path", options_.path),
        nv(":authority", options_.authority),
        nv("content-type", "application/grpc"),
        nv("te", "trailers"),
        nv("user-agent", "ferry-tunnel"),
    };
    nghttp2_data_provider provider{};
    provider.read_callback = Callbacks::read_data;
    const int32_t id =
        nghttp2_submit_request(session_, nullptr, head, std::size(head), &provider, nullptr);
    if (id < 0) {
        down("the gRPC tunnel call could not be submitted", 0);
        return;
    }
    stream_id_ = id;
}

int GrpcTransport::on_begin_headers(int32_t id) noexcept {
    if (options_.is_server && stream_id_ == 0 && phase_ == Phase::Handshake) {
        stream_id_ = id;
    } else if (options_.is_server && id != stream_id_) {
        // One tunnel per connection: another call is refused (RFC 9113 §8.7: safe to retry).
        (void)nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    if (id == stream_id_) {
        http_status_ = 0;
        grpc_status_ = -1;
        path_ok_ = method_ok_ = grpc_content_ = false;
    }
    return 0;
}

int GrpcTransport::on_header(int32_t id, std::string_view name, std::string_view value) noexcept {
    if (id != stream_id_) {
        return 0;
    }
    if (name == ":path") {
        path_ok_ = value == options_.path;
    } else if (name == ":method") {
        method_ok_ = value == "POST";
    } else if (name == ":status") {
        http_status_ = to_int(value);
    } else if (name == "content-type") {
        grpc_content_ = grpc::is_grpc_content_type(value);
    } else if (name == "grpc-status") {
        grpc_status_ = to_int(value);
    }
    return 0;
}

void GrpcTransport::request_headers_done() noexcept {
    // The path first: a client at the wrong address hears "not here", whatever it asked.
    if (!path_ok_) {
        refuse("200", "12", "no tunnel at this path");
        return;
    }
    if (!method_ok_ || !grpc_content_) {
        refuse(method_ok_ ? "415" : "405", nullptr, "the tunnel takes only gRPC POSTs");
        return;
    }
    const nghttp2_nv head[] = {nv(":status", "200"), nv("content-type", "application/grpc")};
    nghttp2_data_provider provider{};
    provider.read_callback = Callbacks::read_data;
    if (nghttp2_submit_response(session_, stream_id_, head, std::size(head), &provider) != 0) {
        fail(NGHTTP2_INTERNAL_ERROR, "the gRPC tunnel response could not be submitted");
        return;
    }
    opened();
}

void GrpcTransport::response_headers_done(bool end_stream) noexcept {
    if (http_status_ != 200 || !grpc_content_ || end_stream || grpc_status_ >= 0) {
        metrics_.grpc_tunnel_failures.add();
        FERRY_LOG(Warn, "tunnel gRPC call to %s refused: HTTP %d, grpc-status %d", options_.path,
                  http_status_, grpc_status_);
        phase_ = Phase::Refused;
        peer_ended("the server refused the gRPC tunnel call");
        return;
    }
    opened();
}

void GrpcTransport::refuse(const char* status, const char* grpc_status,
                           const char* reason) noexcept {
    // Anyone can provoke this: logged at debug level only.
    FERRY_LOG(Debug, "tunnel gRPC call refused: %s %s", status,
              grpc_status != nullptr ? grpc_status : "-");
    metrics_.grpc_tunnel_failures.add();
    phase_ = Phase::Refused;
    // Trailers-only (PROTOCOL-HTTP2.md): one HEADERS with END_STREAM carries the status.
    nghttp2_nv head[4] = {nv(":status", status), nv("content-type", "application/grpc")};
    size_t n = 2;
    if (grpc_status != nullptr) {
        head[n++] = nv("grpc-status", grpc_status);
        head[n++] = nv("grpc-message", reason);
    }
    (void)nghttp2_submit_response(session_, stream_id_, head, n, nullptr);
    (void)nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, stream_id_, NGHTTP2_NO_ERROR, nullptr,
                                0);
    close_when_sent("refused the gRPC tunnel call");
}

void GrpcTransport::opened() noexcept {
    phase_ = Phase::Open;
    metrics_.grpc_tunnel_streams.add();
    sink_->on_transport_established();
}

// ---- input ------------------------------------------------------------------------------------

void GrpcTransport::on_transport_read(buf::Chunk&& bytes) noexcept {
    if (down_ || close_reason_ != nullptr || session_ == nullptr) {
        return;
    }
    reading_ = &bytes;
    in_recv_ = true;
    const ssize_t rv = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    in_recv_ = false;
    reading_ = nullptr;
    if (rv < 0 && !down_ && close_reason_ == nullptr) {
        if (phase_ == Phase::Handshake) {
            metrics_.grpc_tunnel_failures.add();
        }
        FERRY_LOG(Debug, "tunnel gRPC: %s", nghttp2_strerror(static_cast<int>(rv)));
        (void)nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
        close_when_sent(phase_ == Phase::Handshake ? "the peer does not speak HTTP/2"
                                                   : "HTTP/2 protocol error on the gRPC tunnel");
        return;
    }
    output();  // SETTINGS ACK, PING ACK, WINDOW_UPDATE, what the input made
}

int GrpcTransport::on_frame_recv(uint8_t type, uint8_t flags, int32_t id) noexcept {
    if (down_ || close_reason_ != nullptr) {
        return 0;
    }
    if (type == NGHTTP2_GOAWAY) {
        peer_ended("peer sent GOAWAY");
        return 0;
    }
    if (id == 0 || id != stream_id_) {
        return 0;
    }
    const bool end = (flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (type == NGHTTP2_HEADERS) {
        if (phase_ == Phase::Handshake) {
            if (options_.is_server) {
                request_headers_done();
                if (end && phase_ == Phase::Open) {
                    peer_ended("the client ended the gRPC tunnel call at once");
                }
            } else {
                response_headers_done(end);
            }
            return 0;
        }
        if (end) {
            // Trailers: the server's end of the call.
            if (grpc_status_ > 0) {
                FERRY_LOG(Warn, "tunnel gRPC call ended with grpc-status %d", grpc_status_);
            }
            peer_ended("peer ended the gRPC tunnel call");
        }
        return 0;
    }
    if (type == NGHTTP2_DATA && end) {
        if (!reader_.at_boundary()) {
            fail(NGHTTP2_PROTOCOL_ERROR, "the gRPC tunnel call ended inside a message");
            return 0;
        }
        peer_ended("peer ended the gRPC tunnel call");
    }
    return 0;
}

int GrpcTransport::on_data_chunk(int32_t id, const uint8_t* data, size_t len) noexcept {
    if (id != stream_id_ || phase_ != Phase::Open || down_ || close_reason_ != nullptr) {
        nghttp2_session_consume(session_, id, len);
        return 0;
    }
    handed_ = 0;
    ChunkEvents events{this};
    const grpc::ReadResult r = reader_.feed(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), len), events);
    // Message framing returns its window at once; the bytes handed up when they are taken.
    (void)nghttp2_session_consume(session_, id, len - handed_);
    consume(handed_);
    if (r.status == grpc::ReadStatus::Error && close_reason_ == nullptr && !down_) {
        fail(NGHTTP2_PROTOCOL_ERROR, r.detail);
    }
    return 0;
}

bool GrpcTransport::on_chunk_data(std::span<const std::byte> bytes) noexcept {
    buf::Chunk piece;
    if (reading_ != nullptr && bytes.data() >= reading_->data() &&
        bytes.data() + bytes.size() <= reading_->data() + reading_->size()) {
        // nghttp2 hands DATA payload as views of the input: the layer above gets a slice of the
        // very receive buffer.
        piece = reading_->share(static_cast<uint32_t>(bytes.data() - reading_->data()),
                                static_cast<uint32_t>(bytes.size()));
    } else {
        piece = ctx_.alloc_tunnel_chunk();
        if (piece.empty() || piece.capacity() < bytes.size()) {
            fail(NGHTTP2_INTERNAL_ERROR, "out of buffers for the gRPC tunnel");
            return false;
        }
        std::memcpy(piece.data(), bytes.data(), bytes.size());
        piece.set_size(static_cast<uint32_t>(bytes.size()));
        metrics_.bytes_copied.add(bytes.size());
    }
    handed_ += bytes.size();
    sink_->on_transport_read(std::move(piece));
    return !down_ && close_reason_ == nullptr;
}

int GrpcTransport::on_stream_close(int32_t id, uint32_t error_code) noexcept {
    if (id != stream_id_ || down_ || close_reason_ != nullptr) {
        return 0;
    }
    if (error_code != NGHTTP2_NO_ERROR) {
        if (phase_ == Phase::Handshake) {
            metrics_.grpc_tunnel_failures.add();
        }
        FERRY_LOG(Warn, "tunnel gRPC stream reset: %s", nghttp2_http2_strerror(error_code));
        (void)nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
        close_when_sent("the gRPC tunnel stream was reset");
        return 0;
    }
    peer_ended("the gRPC tunnel call ended");
    return 0;
}

void GrpcTransport::peer_ended(const char* reason) noexcept {
    if (close_reason_ != nullptr || down_) {
        return;
    }
    peer_end_ = true;
    if (phase_ == Phase::Open) {
        end_our_side();
    }
    // Not terminate_session: that stops output at the GOAWAY, before our own END_STREAM.
    (void)nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                                nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                                nullptr, 0);
    close_when_sent(reason);
}

void GrpcTransport::fail(uint32_t h2_error, const char* detail) noexcept {
    FERRY_LOG(Warn, "tunnel gRPC: %s", detail);
    if (stream_id_ != 0) {
        (void)nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id_, h2_error);
    }
    (void)nghttp2_session_terminate_session(session_, h2_error);
    close_when_sent(detail);
}

void GrpcTransport::consume(size_t n) noexcept {
    if (paused_) {
        owed_ += n;
        return;
    }
    (void)nghttp2_session_consume(session_, stream_id_, n);
}

void GrpcTransport::pause_reading() noexcept {
    paused_ = true;
    lower_->pause_reading();
}

void GrpcTransport::resume_reading() noexcept {
    paused_ = false;
    if (owed_ > 0 && session_ != nullptr && !down_) {
        (void)nghttp2_session_consume(session_, stream_id_, owed_);
        owed_ = 0;
        output();  // the WINDOW_UPDATE
    }
    lower_->resume_reading();
}

void GrpcTransport::close_when_sent(const char* reason) noexcept {
    close_reason_ = reason;
    output();
}

void GrpcTransport::output() noexcept {
    // nghttp2 must not be asked for output from inside its own input callbacks: what they queue
    // goes out once nghttp2_session_mem_recv has returned.
    if (in_recv_ || down_) {
        return;
    }
    send_next();
    if (!lower_writing_ && close_reason_ != nullptr) {
        down(close_reason_, 0);
    }
}

void GrpcTransport::on_transport_down(const char* reason, int err) noexcept {
    if (phase_ == Phase::Handshake && err == 0) {
        if (!options_.is_server) {
            metrics_.grpc_tunnel_failures.add();
        }
        reason = "peer closed the connection before the gRPC tunnel call was answered";
    }
    down(reason, err);
}

void GrpcTransport::down(const char* reason, int err) noexcept {
    ctx_.buffer_waits.cancel(this);
    if (!down_) {
        down_ = true;
        sink_->on_transport_down(reason, err);
    }
    lower_->close();
}

// ---- output -----------------------------------------------------------------------------------

void GrpcTransport::write(iovec* iov, uint32_t count, uint64_t bytes) noexcept {
    writer_iov_ = iov;
    writer_count_ = count;
    writer_active_ = true;
    cursor_.index = 0;
    cursor_.offset = 0;
    cursor_.unframed = our_end_ || peer_end_ ? 0 : bytes;  // after our end the rest is dropped
    if (data_deferred_ && session_ != nullptr && stream_id_ != 0) {
        data_deferred_ = false;
        (void)nghttp2_session_resume_data(session_, stream_id_);
    }
    output();
}

void GrpcTransport::shutdown_write() noexcept {
    if (down_) {
        return;
    }
    if (phase_ != Phase::Open) {
        lower_->shutdown_write();
        return;
    }
    end_our_side();
    output();
}

void GrpcTransport::end_our_side() noexcept {
    if (our_end_) {
        return;
    }
    our_end_ = true;
    if (data_deferred_) {
        data_deferred_ = false;
        (void)nghttp2_session_resume_data(session_, stream_id_);
    }
}

ssize_t GrpcTransport::on_read_data(size_t length, uint32_t* flags) noexcept {
    *flags = NGHTTP2_DATA_FLAG_NO_COPY;
    if (cursor_.empty() || close_reason_ != nullptr) {
        if (our_end_ && !our_end_sent_) {
            our_end_sent_ = true;
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            if (options_.is_server) {
                // The call's end for a gRPC client: trailers with grpc-status 0.
                const nghttp2_nv trailers[] = {nv("grpc-status", "0")};
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                if (nghttp2_submit_trailer(session_, stream_id_, trailers, 1) != 0) {
                    return NGHTTP2_ERR_CALLBACK_FAILURE;
                }
            }
            return 0;
        }
        data_deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    // What fits this lower write: iovecs (one kept for the frame header), message header slots
    // and the 9 staging bytes of the frame header.
    if (out_count_ + 2 > kMaxOut || !have_staging() || staging_used_ + 9 > staging_.capacity()) {
        data_deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    Cursor plan = cursor_;
    uint32_t slots = headers_used_;
    const uint64_t n = walk(plan, length, kMaxOut - out_count_ - 1, slots, false);
    if (n == 0) {
        data_deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
}

uint64_t GrpcTransport::walk(Cursor& c, uint64_t max, uint32_t iov_cap, uint32_t& slots,
                             bool emit) noexcept {
    uint64_t taken = 0;
    uint32_t iovs = 0;
    while (taken < max) {
        if (c.header_off < c.header_len) {
            if (iovs >= iov_cap) {
                break;
            }
            const auto take =
                static_cast<uint8_t>(std::min<uint64_t>(c.header_len - c.header_off, max - taken));
            if (emit) {
                out_[out_count_++] = iovec{headers_[c.header_slot] + c.header_off, take};
            }
            ++iovs;
            c.header_off = static_cast<uint8_t>(c.header_off + take);
            taken += take;
            continue;
        }
        if (c.msg_left > 0) {
            if (iovs >= iov_cap || c.index >= writer_count_) {
                break;
            }
            const iovec& v = writer_iov_[c.index];
            const uint64_t take =
                std::min<uint64_t>({v.iov_len - c.offset, c.msg_left, max - taken});
            if (take > 0) {
                if (emit) {
                    out_[out_count_++] =
                        iovec{static_cast<std::byte*>(v.iov_base) + c.offset, take};
                }
                ++iovs;
            }
            c.offset += take;
            c.msg_left -= static_cast<uint32_t>(take);
            taken += take;
            if (c.offset == v.iov_len) {
                ++c.index;
                c.offset = 0;
            }
            continue;
        }
        if (c.unframed == 0 || slots >= kMaxHeaders) {
            break;
        }
        const auto len =
            static_cast<uint32_t>(std::min<uint64_t>(c.unframed, options_.max_message));
        c.header_slot = slots++;
        c.header_len = static_cast<uint8_t>(grpc::chunk_header_size(len));
        if (emit) {
            (void)grpc::write_chunk_header(std::span<std::byte, grpc::kMaxChunkHeaderSize>(
                                               headers_[c.header_slot], grpc::kMaxChunkHeaderSize),
                                           len);
        }
        c.header_off = 0;
        c.msg_left = len;
        c.unframed -= len;
    }
    return taken;
}

bool GrpcTransport::stage(const uint8_t* data, size_t len) noexcept {
    if (!have_staging() || staging_used_ + len > staging_.capacity() || out_count_ >= kMaxOut) {
        return false;
    }
    std::byte* at = staging_.data() + staging_used_;
    std::memcpy(at, data, len);
    staging_used_ += static_cast<uint32_t>(len);
    // Frames copied back to back stay one iovec.
    if (out_count_ > 0 &&
        static_cast<std::byte*>(out_[out_count_ - 1].iov_base) + out_[out_count_ - 1].iov_len ==
            at) {
        out_[out_count_ - 1].iov_len += len;
    } else {
        out_[out_count_++] = iovec{at, len};
    }
    out_bytes_ += len;
    return true;
}

bool GrpcTransport::have_staging() noexcept {
    if (staging_.empty()) {
        staging_ = ctx_.alloc_tunnel_chunk();
        staging_used_ = 0;
    }
    return !staging_.empty();
}

ssize_t GrpcTransport::on_send(const uint8_t* data, size_t len) noexcept {
    const size_t room = have_staging() ? staging_.capacity() - staging_used_ : 0;
    const size_t n = std::min(len, room);
    if (n == 0 || !stage(data, n)) {
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    return static_cast<ssize_t>(n);
}

int GrpcTransport::on_send_data(const uint8_t* framehd, size_t length) noexcept {
    if (out_count_ + 2 > kMaxOut || !stage(framehd, 9)) {
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    // The payload: our message headers and the writer's memory, borrowed until the lower write
    // is done (NO_COPY).
    const uint32_t before = out_count_;
    const uint64_t n = walk(cursor_, length, kMaxOut - out_count_, headers_used_, true);
    for (uint32_t i = before; i < out_count_; ++i) {
        out_bytes_ += out_[i].iov_len;
    }
    if (n != length) {
        FERRY_BUG("gRPC tunnel DATA frame shorter than planned");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

void GrpcTransport::send_next() noexcept {
    if (lower_writing_ || down_ || in_recv_ || session_ == nullptr) {
        return;
    }
    const int rv = nghttp2_session_send(session_);
    if (rv != 0) {
        FERRY_LOG(Warn, "tunnel gRPC: %s", nghttp2_strerror(rv));
        down("the gRPC tunnel's HTTP/2 session failed", 0);
        return;
    }
    if (out_count_ == 0) {
        // DATA held back for want of a staging buffer is not in want_write.
        const bool data_waits =
            data_deferred_ && (!cursor_.empty() || (our_end_ && !our_end_sent_));
        if (staging_.empty() && (data_waits || nghttp2_session_want_write(session_) != 0)) {
            // The pools are dry and nothing of ours is out to bring a buffer back: wait for
            // other sockets to return one rather than drop the connection.
            ctx_.buffer_waits.park(this);
        }
        return;
    }
    lower_writing_ = true;
    lower_->write(out_, out_count_, out_bytes_);
}

void GrpcTransport::resume_data() noexcept {
    if (data_deferred_ && stream_id_ != 0 && (!cursor_.empty() || our_end_)) {
        data_deferred_ = false;
        (void)nghttp2_session_resume_data(session_, stream_id_);
    }
}

void GrpcTransport::writer_done() noexcept {
    writer_active_ = false;
    writer_iov_ = nullptr;
    writer_count_ = 0;
    cursor_ = Cursor{};
    sink_->on_transport_written();
}

void GrpcTransport::on_transport_written() noexcept {
    lower_writing_ = false;
    out_count_ = 0;
    out_bytes_ = 0;
    staging_used_ = 0;
    // A message header cut by the end of the last DATA frame keeps its slot, moved to the front.
    if (cursor_.header_off < cursor_.header_len && cursor_.header_slot != 0) {
        std::memcpy(headers_[0], headers_[cursor_.header_slot], grpc::kMaxChunkHeaderSize);
        cursor_.header_slot = 0;
    }
    headers_used_ = cursor_.header_off < cursor_.header_len ? 1 : 0;
    if (down_) {
        if (writer_active_) {
            writer_done();
        }
        return;
    }
    // Everything the writer gave is in the write just done (or dropped after our end).
    if (writer_active_ && (cursor_.empty() || our_end_sent_ || peer_end_)) {
        writer_done();
    }
    resume_data();
    output();
    if (!lower_writing_ && !down_) {
        // Idle: the staging buffer goes back to the pool until there is output again.
        staging_.reset();
        staging_used_ = 0;
    }
}

void GrpcTransport::close() noexcept {
    down_ = true;
    ctx_.buffer_waits.cancel(this);
    lower_->close();
}

void GrpcTransport::on_transport_quiescent() noexcept {
    lower_writing_ = false;
    staging_.reset();
    if (writer_active_) {
        writer_done();
    }
    sink_->on_transport_quiescent();
}

}  // namespace ferry::transport
