#include "ferry/role/grpc_upstream.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "ferry/io/socket.h"
#include "ferry/role/grpc_metadata.h"

namespace ferry::role {

namespace pt = proto::tunnel;
namespace grpc = proto::grpc;

namespace {

GrpcUpstreamConnection* connection_of(void* user_data) {
    return static_cast<GrpcUpstreamConnection*>(user_data);
}

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP2_NV_FLAG_NONE};
}

int cb_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    return connection_of(user)->on_header(frame->hd.stream_id, view(name, namelen),
                                          view(value, valuelen));
}

int cb_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    return connection_of(user)->on_frame_recv(frame->hd.type, frame->hd.flags, frame->hd.stream_id);
}

int cb_data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                  void* user) {
    return connection_of(user)->on_data_chunk(id, data, len);
}

int cb_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user) {
    return connection_of(user)->on_stream_close(id, error_code);
}

ssize_t cb_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user) {
    return connection_of(user)->on_send(data, len);
}

int cb_send_data(nghttp2_session*, nghttp2_frame*, const uint8_t* framehd, size_t length,
                 nghttp2_data_source* source, void* user) {
    return connection_of(user)->on_send_data(framehd, length,
                                             static_cast<GrpcUpstreamCall*>(source->ptr));
}

ssize_t cb_read_request(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                        nghttp2_data_source* source, void*) {
    return static_cast<GrpcUpstreamCall*>(source->ptr)->read_request(length, flags);
}

nghttp2_session_callbacks* client_callbacks() {
    static nghttp2_session_callbacks* callbacks = [] {
        nghttp2_session_callbacks* cbs = nullptr;
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
        nghttp2_session_callbacks_set_send_callback(cbs, cb_send);
        nghttp2_session_callbacks_set_send_data_callback(cbs, cb_send_data);
        return cbs;
    }();
    return callbacks;
}

// Fields that never cross to the upstream as metadata: pseudo-headers (rebuilt), HTTP/2
// connection-specific fields (RFC 9113 §8.2.2), ferry's own.
bool not_forwarded(std::string_view name) {
    return name.empty() || name.front() == ':' || name == "connection" || name == "te" ||
           name == "keep-alive" || name == "transfer-encoding" || name == "upgrade" ||
           name == "proxy-connection" || name == "host" || name == "trail";
}

// RST_STREAM error code -> gRPC status (PROTOCOL-HTTP2.md, "Errors").
grpc::StatusCode status_from_rst(uint32_t code) {
    switch (code) {
        case NGHTTP2_REFUSED_STREAM:
            return grpc::StatusCode::Unavailable;
        case NGHTTP2_CANCEL:
            return grpc::StatusCode::Cancelled;
        case NGHTTP2_ENHANCE_YOUR_CALM:
            return grpc::StatusCode::ResourceExhausted;
        case NGHTTP2_INADEQUATE_SECURITY:
            return grpc::StatusCode::PermissionDenied;
        default:
            return grpc::StatusCode::Internal;
    }
}

}  // namespace

// ---- GrpcUpstreamCall -------------------------------------------------------------------------

GrpcUpstreamCall::GrpcUpstreamCall(GrpcUpstreamConnection& conn, tunnel::Stream& stream) noexcept
    : conn_(conn), stream_(&stream), reader_(conn.owner_.options().max_message_size) {}

GrpcUpstreamCall::~GrpcUpstreamCall() {
    meter_.end(grpc::StatusCode::Cancelled, conn_.ctx_.now_ns);  // gone without a status
    outbox_.clear(conn_.ctx_);
}

bool GrpcUpstreamCall::start(const pt::Open& open) noexcept {
    const GrpcUpstreams& owner = conn_.owner_;
    std::string_view path;
    std::string_view authority;
    std::string trail;
    for (const pt::MetadataEntry& e : open.metadata) {
        if (e.first == ":path") {
            path = e.second;
        } else if (e.first == ":authority") {
            authority = e.second;
        } else if (e.first == "trail") {
            trail.append(trail.empty() ? "" : ", ").append(e.second);
        }
    }
    if (path.empty() || path.front() != '/') {
        return false;
    }
    trail.append(trail.empty() ? "" : ", ").append(owner.options().node_name);
    std::string default_authority;
    if (authority.empty()) {
        default_authority = owner.upstream().host + ":" + std::to_string(owner.upstream().port);
        authority = default_authority;
    }
    GrpcHeaderList headers;
    headers.add(":method", "POST");
    headers.add(":scheme", owner.upstream().tls() ? "https" : "http");
    headers.add(":path", path);
    headers.add(":authority", authority);
    headers.add("te", "trailers");
    bool typed = false;
    for (const pt::MetadataEntry& e : open.metadata) {
        if (not_forwarded(e.first)) {
            continue;
        }
        typed = typed || e.first == "content-type";
        headers.add_raw(e.first, e.second);
    }
    if (!typed) {
        headers.add("content-type", "application/grpc");
    }
    headers.add("x-ferry-trail", trail);

    std::vector<nghttp2_nv> nv;
    nv.reserve(headers.size());
    for (const auto& [name, value] : headers.fields()) {
        nv.push_back(make_nv(name, value));
    }
    nghttp2_data_provider provider{};
    provider.source.ptr = this;
    provider.read_callback = cb_read_request;
    const int32_t id =
        nghttp2_submit_request(conn_.session_, nullptr, nv.data(), nv.size(), &provider, this);
    if (id < 0) {
        conn_.owner_.log_failure("request not submitted", nghttp2_strerror(id));
        return false;
    }
    id_ = id;
    meter_.start(conn_.metrics_.grpc_upstream, conn_.ctx_.now_ns);
    conn_.want_flush();
    return true;
}

void GrpcUpstreamCall::on_stream_data(buf::Chunk&& data, pt::DataFlags flags) noexcept {
    if (stream_ == nullptr || upstream_closed_) {
        if (stream_ != nullptr) {
            stream_->consumed(data.size());
        }
        return;
    }
    const bool end = flags.end_message();
    const GrpcOutbox::Refusal r = outbox_.push(conn_.ctx_, conn_.out_, *stream_, std::move(data),
                                               flags, conn_.owner_.options().max_message_size);
    if (!r.ok()) {
        conn_.owner_.log_failure("call ended", r.message);
        end_call(r.status, r.message);
        return;
    }
    if (end) {
        meter_.message_in();
        resume_request();
    }
}

void GrpcUpstreamCall::on_stream_fin() noexcept {
    request_fin_ = true;
    if (!upstream_closed_) {
        resume_request();  // END_STREAM once what is queued went out
    }
}

void GrpcUpstreamCall::on_stream_reset(pt::ErrorCode code) noexcept {
    // The client cancelled, its deadline passed, or the tunnel went: the server hears CANCEL.
    stream_ = nullptr;
    meter_.end(grpc::StatusCode::Cancelled, conn_.ctx_.now_ns);
    FERRY_LOG(Debug, "grpc upstream call %d: tunnel stream reset (%s)", id_,
              pt::error_code_name(code));
    outbox_.clear(conn_.ctx_);
    cancel_upstream();
}

void GrpcUpstreamCall::on_stream_writable() noexcept {
    if (paused_) {
        paused_ = false;
        if (window_owed_ > 0 && !upstream_closed_) {
            nghttp2_session_consume_stream(conn_.session_, id_, window_owed_);
            conn_.want_flush();  // the WINDOW_UPDATE
        }
        window_owed_ = 0;
    }
}

void GrpcUpstreamCall::resume_request() noexcept {
    if (deferred_) {
        deferred_ = false;
        nghttp2_session_resume_data(conn_.session_, id_);
    }
    conn_.want_flush();
}

ssize_t GrpcUpstreamCall::read_request(size_t max, uint32_t* flags) noexcept {
    if (outbox_.ready_bytes() > 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        return static_cast<ssize_t>(std::min<uint64_t>(max, outbox_.ready_bytes()));
    }
    if (request_fin_) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
}

bool GrpcUpstreamCall::take_request(size_t len) noexcept {
    uint64_t credit = 0;
    const bool whole = outbox_.take(conn_.ctx_, conn_.out_, len, &credit);
    conn_.metrics_.bytes_to_local.add(len);
    if (credit > 0 && stream_ != nullptr) {
        stream_->consumed(static_cast<uint32_t>(credit));
    }
    return whole;
}

bool GrpcUpstreamCall::add_header(std::string_view name, std::string_view value) noexcept {
    head_bytes_ += name.size() + value.size() + 32;  // HPACK's accounting (RFC 9113 §6.5.2)
    if (head_bytes_ > conn_.owner_.options().max_header_list_size) {
        return false;
    }
    head_.push_back({std::string(name), std::string(value)});
    return true;
}

void GrpcUpstreamCall::on_headers(bool end_stream) noexcept {
    std::vector<Field> fields;
    fields.swap(head_);
    head_bytes_ = 0;
    if (stream_ == nullptr) {
        return;
    }
    GrpcMetadataBuilder md;
    if (!response_started_) {
        int status = 0;
        std::string_view content_type;
        for (const Field& f : fields) {
            if (f.name == ":status") {
                std::from_chars(f.value.data(), f.value.data() + f.value.size(), status);
            } else if (f.name == "content-type") {
                content_type = f.value;
            }
        }
        if (status >= 100 && status < 200) {
            return;  // an interim response: the real head follows
        }
        if (status != 200) {
            // Not a gRPC answer: the status the gRPC spec maps the HTTP status to.
            char message[64];
            std::snprintf(message, sizeof(message), "upstream answered HTTP %d", status);
            conn_.owner_.log_failure("call failed", message);
            end_call(grpc::status_from_http(status), message);
            return;
        }
        if (!end_stream && !grpc::is_grpc_content_type(content_type)) {
            conn_.owner_.log_failure("call failed", "response content-type is not gRPC");
            end_call(grpc::StatusCode::Unknown, "upstream answered with a content-type not gRPC");
            return;
        }
        response_started_ = true;
        if (!end_stream) {
            // The response head: the stream is accepted with the server's metadata.
            for (const Field& f : fields) {
                if (!not_forwarded(f.name)) {
                    md.add_wire_field(f.name, f.value);
                }
            }
            if (!stream_->accept(md.entries())) {
                end_call(grpc::StatusCode::Internal, "response metadata does not fit a frame");
            }
            return;
        }
        // Trailers-Only: the fields are the call's trailers (content-type stays with them).
    } else if (!end_stream) {
        end_call(grpc::StatusCode::Internal, "upstream sent a second header block");
        return;
    }
    if (!reader_.at_boundary()) {
        end_call(grpc::StatusCode::Internal, "upstream ended the call inside a message");
        return;
    }
    bool has_status = false;
    for (const Field& f : fields) {
        if (!not_forwarded(f.name)) {
            has_status = has_status || f.name == "grpc-status";
            md.add_wire_field(f.name, f.value);
        }
    }
    if (!has_status) {
        md.add("grpc-status", grpc::status_text(grpc::StatusCode::Unknown));
        md.add("grpc-message", "upstream ended the call without grpc-status");
    }
    finish_tunnel(md.entries());
}

void GrpcUpstreamCall::on_data(const uint8_t* data, size_t len) noexcept {
    nghttp2_session_consume_connection(conn_.session_, len);
    if (stream_ == nullptr || !response_started_) {
        nghttp2_session_consume_stream(conn_.session_, id_, len);
        if (stream_ != nullptr) {
            end_call(grpc::StatusCode::Internal, "upstream sent DATA before its response head");
        }
        return;
    }
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), len);
    const grpc::ReadResult r = reader_.feed(bytes, *this);
    if (r.status == grpc::ReadStatus::Error) {
        nghttp2_session_consume_stream(conn_.session_, id_, len);
        conn_.owner_.log_failure("call failed", r.detail);
        end_call(r.code, r.detail);
        return;
    }
    if (stream_ != nullptr && (paused_ || stream_->should_pause())) {
        if (!paused_) {
            conn_.metrics_.flow_paused.add();
        }
        paused_ = true;
        window_owed_ += static_cast<uint32_t>(len);
        return;
    }
    nghttp2_session_consume_stream(conn_.session_, id_, len);
}

bool GrpcUpstreamCall::on_message_start(grpc::MessagePrefix prefix) noexcept {
    in_kind_ = prefix.compressed ? pt::MessageKind::Compressed : pt::MessageKind::Binary;
    return true;
}

bool GrpcUpstreamCall::on_message_data(std::span<const std::byte> piece, bool end) noexcept {
    if (stream_ == nullptr) {
        return false;
    }
    buf::Chunk slice = slice_of_input(conn_.ctx_, conn_.reading_, piece);
    if (slice.empty() && !piece.empty()) {
        end_call(grpc::StatusCode::ResourceExhausted, "no free buffer for a message");
        return false;
    }
    if (piece.empty() && !end) {
        return true;
    }
    conn_.metrics_.bytes_from_local.add(piece.size());
    stream_->write(std::move(slice), pt::DataFlags::make(false, end, in_kind_));
    if (end) {
        meter_.message_out();
    }
    return true;
}

void GrpcUpstreamCall::on_data_end() noexcept {
    // END_STREAM on DATA: gRPC responses always end with trailers; the status was lost.
    if (stream_ != nullptr) {
        end_call(grpc::StatusCode::Internal, "upstream ended the call without trailers");
    }
}

void GrpcUpstreamCall::on_closed(uint32_t h2_error, const char* reason) noexcept {
    upstream_closed_ = true;
    if (stream_ == nullptr) {
        return;
    }
    if (reason != nullptr) {
        end_call(grpc::StatusCode::Unavailable, reason);
        return;
    }
    char message[96];
    std::snprintf(message, sizeof(message), "upstream reset the call (%s)",
                  nghttp2_http2_strerror(h2_error));
    end_call(h2_error == NGHTTP2_NO_ERROR ? grpc::StatusCode::Internal : status_from_rst(h2_error),
             message);
}

void GrpcUpstreamCall::end_call(grpc::StatusCode status, std::string_view message) noexcept {
    cancel_upstream();
    if (stream_ == nullptr) {
        return;
    }
    const pt::MetadataEntry trailers[] = {{"grpc-status", grpc::status_text(status)},
                                          {"grpc-message", message}};
    finish_tunnel(trailers);
}

void GrpcUpstreamCall::finish_tunnel(std::span<const pt::MetadataEntry> trailers) noexcept {
    grpc::StatusCode status = grpc::StatusCode::Unknown;
    for (const pt::MetadataEntry& e : trailers) {
        if (e.first == "grpc-status") {
            status = grpc::parse_status(e.second).value_or(grpc::StatusCode::Unknown);
        }
    }
    meter_.end(status, conn_.ctx_.now_ns);
    tunnel::Stream* s = stream_;
    stream_ = nullptr;
    outbox_.clear(conn_.ctx_);
    if (!s->finish_with_trailers(trailers)) {
        s->reset(pt::ErrorCode::InternalError);
        return;
    }
    // What the client still sends after the trailers is dropped by the session.
    s->detach();
}

void GrpcUpstreamCall::cancel_upstream() noexcept {
    if (!upstream_closed_ && id_ > 0 && conn_.session_ != nullptr) {
        upstream_closed_ = true;  // no more of it is read; on_stream_close frees the call
        (void)nghttp2_submit_rst_stream(conn_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
        conn_.want_flush();
    }
}

// ---- GrpcUpstreamConnection -------------------------------------------------------------------

GrpcUpstreamConnection::GrpcUpstreamConnection(loop::Context& ctx, Metrics& metrics,
                                               transport::Metrics& transport_metrics,
                                               GrpcUpstreams& owner) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      owner_(owner),
      tcp_(ctx, transport_metrics, ctx.local_bufs),
      out_(ctx) {
    metrics_.connections_active.add(1);
}

GrpcUpstreamConnection::~GrpcUpstreamConnection() {
    if (session_ != nullptr) {
        nghttp2_session_del(session_);
    }
}

bool GrpcUpstreamConnection::start() noexcept {
    const GrpcUpstreamOptions& o = owner_.options();
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    // Stream windows return as the tunnel takes the bytes (back-pressure per call).
    nghttp2_option_set_no_auto_window_update(option, 1);
    nghttp2_option_set_max_send_header_block_length(option, o.max_header_list_size);
    const int rv = nghttp2_session_client_new2(&session_, client_callbacks(), this, option);
    nghttp2_option_del(option);
    const int fd = rv == 0 ? io::new_tcp_socket(owner_.upstream().address.family()) : -1;
    if (fd < 0) {
        owner_.log_failure("no connection", rv != 0 ? nghttp2_strerror(rv) : strerror(errno));
        if (session_ != nullptr) {
            nghttp2_session_del(session_);
            session_ = nullptr;
        }
        metrics_.upstream_connect_errors.add();
        connect_over();
        closing_ = true;
        ctx_.defer_retire(this);
        return false;
    }
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1U << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, o.max_header_list_size},
    };
    (void)nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 3);
    // The connection window is returned as bytes arrive; a large one keeps many calls moving.
    (void)nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    deadline_ns_ = ctx_.now_ns + o.connect_ns;
    tcp_.attach(fd);
    if (owner_.tls_ != nullptr) {
        // The server's NewSessionTickets come after the handshake: records stay in user space
        // (kTLS off), where the record layer drops them.
        transport::TlsOptions to;
        to.ktls = transport::KtlsMode::Off;
        tls_ = std::make_unique<transport::TlsTransport>(ctx_, owner_.transport_metrics_, tcp_,
                                                         *owner_.tls_, to);
        conn_ = tls_.get();
    }
    tcp_.connect(owner_.upstream().address, this);
    return true;
}

void GrpcUpstreamConnection::connect_over() noexcept {
    if (connect_slot_ != nullptr) {
        connect_slot_->release();
        connect_slot_ = nullptr;
        metrics_.upstream_connects_in_flight.add(-1);
    }
}

void GrpcUpstreamConnection::on_transport_established() noexcept {
    if (tls_ != nullptr && !tls_started_) {
        // TCP is up: the TLS handshake runs over it (ClientHello now), and the TLS transport
        // calls here again once it is done.
        tls_started_ = true;
        tls_->start(this);
        return;
    }
    connect_over();
    connected_ = true;
    want_flush();  // the preface, SETTINGS and the calls queued meanwhile
}

void GrpcUpstreamConnection::tick(uint64_t now_ns) noexcept {
    if (!closing_ && deadline_ns_ != 0 && now_ns >= deadline_ns_) {
        metrics_.upstream_connect_errors.add();
        close(connected_ ? "upstream sent no HTTP/2 SETTINGS within --connect-timeout"
                         : "upstream connect did not finish within --connect-timeout");
    }
}

void GrpcUpstreamConnection::retire_when_idle() noexcept {
    retiring_ = true;
    if (calls_ == nullptr && !closing_ && session_ != nullptr) {
        (void)nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
        want_flush();
    }
}

void GrpcUpstreamConnection::link(GrpcUpstreamCall* call) noexcept {
    call->prev = nullptr;
    call->next = calls_;
    if (calls_ != nullptr) {
        calls_->prev = call;
    }
    calls_ = call;
    ++calls_count_;
    ++owner_.calls_;
}

void GrpcUpstreamConnection::unlink(GrpcUpstreamCall* call) noexcept {
    if (call->prev != nullptr) {
        call->prev->next = call->next;
    } else {
        calls_ = call->next;
    }
    if (call->next != nullptr) {
        call->next->prev = call->prev;
    }
    call->prev = call->next = nullptr;
    --calls_count_;
    --owner_.calls_;
}

int GrpcUpstreamConnection::on_header(int32_t id, std::string_view name,
                                      std::string_view value) noexcept {
    auto* call = static_cast<GrpcUpstreamCall*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call == nullptr) {
        return 0;
    }
    if (!call->add_header(name, value)) {
        owner_.log_failure("call failed", "response header list over its limit");
        call->end_call(grpc::StatusCode::ResourceExhausted,
                       "upstream response header list over its limit");
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

int GrpcUpstreamConnection::on_frame_recv(uint8_t type, uint8_t flags, int32_t id) noexcept {
    if (type == NGHTTP2_SETTINGS && id == 0) {
        deadline_ns_ = 0;  // the server speaks HTTP/2
    }
    if (type == NGHTTP2_GOAWAY) {
        // Calls past its last stream id are closed by nghttp2 (REFUSED_STREAM: UNAVAILABLE, which
        // clients retry); new calls go to another connection.
        goaway_ = true;
        return 0;
    }
    if (id == 0) {
        return 0;
    }
    auto* call = static_cast<GrpcUpstreamCall*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call == nullptr) {
        return 0;
    }
    const bool end = (flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (type == NGHTTP2_HEADERS) {
        call->on_headers(end);
    } else if (type == NGHTTP2_DATA && end) {
        call->on_data_end();
    }
    return 0;
}

int GrpcUpstreamConnection::on_data_chunk(int32_t id, const uint8_t* data, size_t len) noexcept {
    auto* call = static_cast<GrpcUpstreamCall*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call == nullptr) {
        nghttp2_session_consume(session_, id, len);
        return 0;
    }
    call->on_data(data, len);
    return 0;
}

int GrpcUpstreamConnection::on_stream_close(int32_t id, uint32_t error_code) noexcept {
    auto* call = static_cast<GrpcUpstreamCall*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call == nullptr) {
        return 0;
    }
    call->on_closed(error_code, nullptr);
    unlink(call);
    nghttp2_session_set_stream_user_data(session_, id, nullptr);
    owner_.calls_pool_.destroy(call);
    if (retiring_ && calls_ == nullptr) {
        (void)nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    }
    return 0;
}

int GrpcUpstreamConnection::on_send_data(const uint8_t* framehd, size_t length,
                                         GrpcUpstreamCall* call) noexcept {
    if (!out_.data_header(framehd)) {
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    // The payload: the call's own buffers, in order, after the header (NO_COPY).
    if (!call->take_request(length)) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

void GrpcUpstreamConnection::on_transport_read(buf::Chunk&& bytes) noexcept {
    if (closing_ || session_ == nullptr) {
        return;
    }
    reading_ = &bytes;
    const ssize_t rv = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    reading_ = nullptr;
    if (rv < 0) {
        owner_.log_failure("connection failed", nghttp2_strerror(static_cast<int>(rv)));
        (void)nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    }
    want_flush();
}

void GrpcUpstreamConnection::flush() noexcept {
    if (closing_ || session_ == nullptr || !connected_ || out_.writing()) {
        return;
    }
    const int rv = nghttp2_session_send(session_);
    if (rv != 0) {
        owner_.log_failure("connection failed", nghttp2_strerror(rv));
        close("the upstream connection failed");
        return;
    }
    if (out_.write_to(*conn_)) {
        return;
    }
    out_.release_idle();
    if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
        close("the upstream connection ended");
    }
}

void GrpcUpstreamConnection::on_transport_written() noexcept {
    const bool more = out_.written();
    if (closing_) {
        return;
    }
    if (more) {
        (void)out_.write_to(*conn_);
        return;
    }
    flush();
}

void GrpcUpstreamConnection::on_transport_down(const char* reason, int err) noexcept {
    if (!connected_) {
        metrics_.upstream_connect_errors.add();
        connect_over();
        owner_.log_failure(reason, err != 0 ? strerror(err) : "closed");
        close("upstream unreachable");
        return;
    }
    FERRY_LOG(Debug, "grpc upstream connection: %s: %s", reason, err != 0 ? strerror(err) : "EOF");
    close("the upstream connection was lost");
}

void GrpcUpstreamConnection::close(const char* reason) noexcept {
    if (closing_) {
        return;
    }
    closing_ = true;
    connect_over();
    // Calls still open end with the connection: UNAVAILABLE, which clients may retry.
    while (calls_ != nullptr) {
        GrpcUpstreamCall* call = calls_;
        call->on_closed(NGHTTP2_CANCEL, reason);
        unlink(call);
        owner_.calls_pool_.destroy(call);
    }
    out_.clear();
    conn_->close();
}

void GrpcUpstreamConnection::on_transport_quiescent() noexcept {
    if (!closing_) {
        close("the upstream connection ended");
    }
    ctx_.defer_retire(this);
}

void GrpcUpstreamConnection::retire() noexcept {
    metrics_.connections_active.add(-1);
    if (slot_ != nullptr) {
        slot_->release();
    }
    owner_.unlink(this);
    owner_.connections_pool_.destroy(this);
}

// ---- GrpcUpstreams ----------------------------------------------------------------------------

GrpcUpstreams::GrpcUpstreams(loop::Context& ctx, Metrics& metrics,
                             transport::Metrics& transport_metrics, ServiceUrl upstream,
                             GrpcUpstreamOptions options) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      transport_metrics_(transport_metrics),
      upstream_(std::move(upstream)),
      options_(std::move(options)) {}

GrpcUpstreams::~GrpcUpstreams() {
    // At shard exit: the sessions' memory goes; the pools abandon the objects themselves.
    for (GrpcUpstreamConnection* c = connections_; c != nullptr; c = c->next) {
        for (GrpcUpstreamCall* call = c->calls_; call != nullptr; call = call->next) {
            call->outbox_.clear(ctx_);
            std::vector<GrpcUpstreamCall::Field>().swap(call->head_);
        }
        c->out_.clear();
        if (c->session_ != nullptr) {
            nghttp2_session_del(c->session_);
            c->session_ = nullptr;
        }
    }
}

GrpcUpstreamConnection* GrpcUpstreams::pick() noexcept {
    GrpcUpstreamConnection* best = nullptr;
    for (GrpcUpstreamConnection* c = connections_; c != nullptr; c = c->next) {
        if (c->usable() && (best == nullptr || c->calls() < best->calls())) {
            best = c;
        }
    }
    if (best != nullptr && best->calls() < options_.calls_per_connection) {
        return best;
    }
    if (connection_count_ < options_.max_connections) {
        if (!options_.process->upstream_connects.try_acquire()) {
            metrics_.upstream_connects_refused.add();
            return best;
        }
        if (!options_.process->connections.try_acquire()) {
            options_.process->upstream_connects.release();
            metrics_.connections_rejected.add();
            return best;
        }
        metrics_.upstream_connects_in_flight.add(1);
        metrics_.connections_accepted.add();
        GrpcUpstreamConnection* c =
            connections_pool_.create(ctx_, metrics_, transport_metrics_, *this);
        c->hold_slots(&options_.process->connections, &options_.process->upstream_connects);
        c->next = connections_;
        if (connections_ != nullptr) {
            connections_->prev = c;
        }
        connections_ = c;
        ++connection_count_;
        if (c->start()) {
            return c;
        }
    }
    return best;
}

tunnel::OpenDecision GrpcUpstreams::open(tunnel::Session&, tunnel::Stream& stream,
                                         const pt::Open& open) noexcept {
    if (draining_) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream, "draining");
    }
    GrpcUpstreamConnection* c = pick();
    if (c == nullptr) {
        return tunnel::OpenDecision::refuse(
            pt::ErrorCode::RefusedStream,
            "no connection to the grpc upstream can be had (connect limits or no socket)");
    }
    GrpcUpstreamCall* call = calls_pool_.create(*c, stream);
    if (!call->start(open)) {
        calls_pool_.destroy(call);
        return tunnel::OpenDecision::refuse(pt::ErrorCode::ProtocolError,
                                            "the call's OPEN has no valid :path");
    }
    c->link(call);
    return tunnel::OpenDecision::accept(call);
}

absl::Status GrpcUpstreams::prepare() noexcept {
    if (!options_.tls.has_value() || tls_ != nullptr) {
        return absl::OkStatus();
    }
    absl::StatusOr<std::unique_ptr<tls::TlsContext>> tls = tls::TlsContext::create(*options_.tls);
    if (!tls.ok()) {
        return tls.status();
    }
    tls_ = *std::move(tls);
    return absl::OkStatus();
}

void GrpcUpstreams::tick(uint64_t now_ns) noexcept {
    for (GrpcUpstreamConnection* c = connections_; c != nullptr;) {
        GrpcUpstreamConnection* next = c->next;
        c->tick(now_ns);
        c = next;
    }
}

void GrpcUpstreams::drain() noexcept {
    draining_ = true;
    for (GrpcUpstreamConnection* c = connections_; c != nullptr; c = c->next) {
        c->retire_when_idle();
    }
}

void GrpcUpstreams::unlink(GrpcUpstreamConnection* c) noexcept {
    if (c->prev != nullptr) {
        c->prev->next = c->next;
    } else if (connections_ == c) {
        connections_ = c->next;
    }
    if (c->next != nullptr) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = nullptr;
    --connection_count_;
}

}  // namespace ferry::role
