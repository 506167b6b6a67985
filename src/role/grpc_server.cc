#include "ferry/role/grpc_server.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "ferry/proto/grpc/wire.h"
#include "ferry/role/grpc_metadata.h"
#include "ferry/role/h2_output.h"
#include "ferry/role/route_key.h"

namespace ferry::role {

namespace pt = proto::tunnel;
namespace grpc = proto::grpc;

namespace {

GrpcConnection* connection_of(void* user_data) { return static_cast<GrpcConnection*>(user_data); }

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP2_NV_FLAG_NONE};
}

// nghttp2's view of a header list (it copies the fields when the frame is submitted).
std::vector<nghttp2_nv> to_nv(const GrpcHeaderList& list) {
    std::vector<nghttp2_nv> nv;
    nv.reserve(list.size());
    for (const auto& [name, value] : list.fields()) {
        nv.push_back(make_nv(name, value));
    }
    return nv;
}

int cb_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    return connection_of(user)->on_begin_headers(frame->hd.stream_id);
}

int cb_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    return connection_of(user)->on_header(frame->hd.stream_id, view(name, namelen),
                                          view(value, valuelen));
}

int cb_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
    return connection_of(user)->on_begin_frame(hd->type, hd->stream_id);
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
    return connection_of(user)->on_send_data(framehd, length, static_cast<GrpcCall*>(source->ptr));
}

ssize_t cb_read_response(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                         nghttp2_data_source* source, void*) {
    return static_cast<GrpcCall*>(source->ptr)->read_response(length, flags);
}

// One set of callbacks for every connection of the process (nghttp2 copies them per session).
nghttp2_session_callbacks* server_callbacks() {
    static nghttp2_session_callbacks* callbacks = [] {
        nghttp2_session_callbacks* cbs = nullptr;
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, cb_begin_frame);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
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

// Headers a proxy never passes on (RFC 9113 §8.2.2 connection-specific fields, and Host, which
// :authority replaces).
bool hop_by_hop(std::string_view name) {
    return name == "connection" || name == "te" || name == "keep-alive" ||
           name == "transfer-encoding" || name == "upgrade" || name == "proxy-connection" ||
           name == "host";
}

}  // namespace

// ---- GrpcCall ---------------------------------------------------------------------------------

GrpcCall::GrpcCall(GrpcConnection& conn, int32_t id) noexcept
    : conn_(conn), id_(id), reader_(conn.owner_.options().max_message_size) {}

GrpcCall::~GrpcCall() {
    meter_.end(grpc::StatusCode::Cancelled, conn_.ctx_.now_ns);  // gone without a status
    outbox_.clear(conn_.ctx_);
}

bool GrpcCall::add_header(std::string_view name, std::string_view value) noexcept {
    // HPACK's own accounting: 32 bytes per field beside its name and value (RFC 9113 §6.5.2).
    request_bytes_ += name.size() + value.size() + 32;
    if (request_bytes_ > conn_.owner_.options().max_header_list_size) {
        return false;
    }
    request_.push_back({std::string(name), std::string(value)});
    return true;
}

void GrpcCall::on_request_headers() noexcept {
    GrpcClients& owner = conn_.owner_;
    std::string_view method;
    std::string_view path;
    std::string_view authority;
    std::string_view content_type;
    std::string_view timeout;
    for (const Field& f : request_) {
        if (f.name == ":method") {
            method = f.value;
        } else if (f.name == ":path") {
            path = f.value;
        } else if (f.name == ":authority") {
            authority = f.value;
        } else if (f.name == "content-type") {
            content_type = f.value;
        } else if (f.name == "grpc-timeout") {
            timeout = f.value;
        }
    }
    if (method != "POST") {
        // Not a gRPC call at all: an HTTP answer (gRPC over HTTP/2 is POST only).
        owner.log_refusal("gRPC call refused", "method other than POST");
        const nghttp2_nv nv[] = {make_nv(":status", "405"), make_nv("allow", "POST")};
        (void)nghttp2_submit_response(conn_.session_, id_, nv, 2, nullptr);
        response_done_ = true;
        conn_.want_flush();
        return;
    }
    if (!grpc::is_grpc_content_type(content_type)) {
        owner.log_refusal("gRPC call refused", "content-type is not application/grpc");
        const nghttp2_nv nv[] = {make_nv(":status", "415")};
        (void)nghttp2_submit_response(conn_.session_, id_, nv, 1, nullptr);
        response_done_ = true;
        conn_.want_flush();
        return;
    }
    meter_.start(conn_.metrics_.grpc_listener, conn_.ctx_.now_ns);
    if (owner.draining()) {
        fail(grpc::StatusCode::Unavailable, "this gateway is shutting down", pt::ErrorCode::Cancel);
        return;
    }
    if (!timeout.empty()) {
        if (const std::optional<uint64_t> ns = grpc::parse_timeout(timeout); ns.has_value()) {
            deadline_ns_ =
                *ns > UINT64_MAX - conn_.ctx_.now_ns ? UINT64_MAX : conn_.ctx_.now_ns + *ns;
        }
    }

    // The OPEN: the method and authority, the client's metadata (binary values decoded to raw
    // bytes, tunnel protocol §6.2), then this node in the trail.
    GrpcMetadataBuilder md;
    md.add(":path", path);
    if (!authority.empty()) {
        md.add(":authority", authority);
    }
    std::string_view key;
    const RouteKeyRule& rule = owner.options().route_key;
    for (const Field& f : request_) {
        if (f.name.empty() || f.name.front() == ':' || hop_by_hop(f.name)) {
            continue;
        }
        if (rule.source == RouteKeySource::Header && key.empty() &&
            absl::EqualsIgnoreCase(f.name, rule.name)) {
            key = f.value;
        }
        md.add_wire_field(f.name, f.value);
    }
    md.add("trail", owner.options().node_name);
    KeyBuffer key_buffer;
    if (key.empty() && conn_.tcp_.raw_socket() != nullptr &&
        client_address_key(conn_.tcp_.raw_socket()->fd(), &key_buffer)) {
        key = key_buffer.view();
    }
    stream_ = owner.opener().open_stream(pt::StreamProtocol::Grpc, key, md.entries(), this);
    if (stream_ == nullptr) {
        conn_.metrics_.connections_rejected.add();
        fail(grpc::StatusCode::Unavailable,
             "no tunnel connection takes a new stream now (none usable, stream limit reached, or "
             "no free buffer)",
             pt::ErrorCode::Cancel);
        return;
    }
    std::vector<Field>().swap(request_);  // the head is in the OPEN now
}

void GrpcCall::on_request_data(const uint8_t* data, size_t len) noexcept {
    nghttp2_session_consume_connection(conn_.session_, len);
    if (stream_ == nullptr || response_done_) {
        nghttp2_session_consume_stream(conn_.session_, id_, len);
        return;
    }
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), len);
    const grpc::ReadResult r = reader_.feed(bytes, *this);
    if (r.status == grpc::ReadStatus::Error) {
        nghttp2_session_consume_stream(conn_.session_, id_, len);
        conn_.owner_.log_refusal("gRPC call failed", r.detail);
        fail(r.code, r.detail, pt::ErrorCode::Cancel);
        return;
    }
    if (stream_ != nullptr && (paused_ || stream_->should_pause())) {
        // The tunnel has a window's worth queued: the client's stream window stays spent until
        // it drains (the connection window was returned above).
        if (!paused_) {
            conn_.metrics_.flow_paused.add();
        }
        paused_ = true;
        window_owed_ += static_cast<uint32_t>(len);
        return;
    }
    nghttp2_session_consume_stream(conn_.session_, id_, len);
}

bool GrpcCall::on_message_start(grpc::MessagePrefix prefix) noexcept {
    in_kind_ = prefix.compressed ? pt::MessageKind::Compressed : pt::MessageKind::Binary;
    return true;
}

bool GrpcCall::on_message_data(std::span<const std::byte> piece, bool end) noexcept {
    if (stream_ == nullptr) {
        return false;
    }
    buf::Chunk slice = slice_of_input(conn_.ctx_, conn_.reading_, piece);
    if (slice.empty() && !piece.empty()) {
        fail(grpc::StatusCode::ResourceExhausted, "no free buffer for a message",
             pt::ErrorCode::Cancel);
        return false;
    }
    if (piece.empty() && !end) {
        return true;
    }
    conn_.metrics_.bytes_from_local.add(piece.size());
    stream_->write(std::move(slice), pt::DataFlags::make(false, end, in_kind_));
    if (end) {
        meter_.message_in();
    }
    return true;
}

void GrpcCall::on_request_end() noexcept {
    if (request_ended_) {
        return;
    }
    request_ended_ = true;
    if (stream_ == nullptr || response_done_) {
        return;
    }
    if (!reader_.at_boundary()) {
        fail(grpc::StatusCode::Internal, "the request ended inside a message",
             pt::ErrorCode::Cancel);
        return;
    }
    stream_->finish();
}

void GrpcCall::on_stream_writable() noexcept {
    if (paused_) {
        paused_ = false;
        give_window();
    }
}

void GrpcCall::give_window() noexcept {
    if (window_owed_ > 0) {
        nghttp2_session_consume_stream(conn_.session_, id_, window_owed_);
        window_owed_ = 0;
        conn_.want_flush();  // the WINDOW_UPDATE
    }
}

void GrpcCall::on_stream_accepted(const pt::MetadataView& metadata) noexcept {
    start_response(&metadata);
}

void GrpcCall::start_response(const pt::MetadataView* metadata) noexcept {
    if (headers_sent_ || response_done_) {
        return;
    }
    headers_sent_ = true;
    GrpcHeaderList headers;
    headers.add(":status", "200");
    bool typed = false;
    if (metadata != nullptr) {
        for (const pt::MetadataEntry& e : *metadata) {
            if (e.first.empty() || e.first.front() == ':' || hop_by_hop(e.first)) {
                continue;
            }
            typed = typed || e.first == "content-type";
            headers.add_raw(e.first, e.second);
        }
    }
    if (!typed) {
        headers.add("content-type", "application/grpc");
    }
    const std::vector<nghttp2_nv> nv = to_nv(headers);
    nghttp2_data_provider provider{};
    provider.source.ptr = this;
    provider.read_callback = cb_read_response;
    if (nghttp2_submit_response(conn_.session_, id_, nv.data(), nv.size(), &provider) != 0) {
        drop_stream(pt::ErrorCode::Cancel);
        nghttp2_submit_rst_stream(conn_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
    }
    conn_.want_flush();
}

void GrpcCall::on_stream_data(buf::Chunk&& data, pt::DataFlags flags) noexcept {
    if (stream_ == nullptr || response_done_) {
        return;
    }
    const bool end = flags.end_message();
    const GrpcOutbox::Refusal r = outbox_.push(conn_.ctx_, conn_.out_, *stream_, std::move(data),
                                               flags, conn_.owner_.options().max_message_size);
    if (!r.ok()) {
        fail(r.status, r.message,
             r.status == grpc::StatusCode::Internal ? pt::ErrorCode::ProtocolError
                                                    : pt::ErrorCode::Cancel);
        return;
    }
    if (end) {
        meter_.message_out();
        resume();
    }
}

void GrpcCall::on_stream_trailers(const pt::MetadataView& trailers) noexcept {
    if (stream_ == nullptr || response_done_) {
        return;
    }
    std::vector<Field> out;
    bool has_status = false;
    for (const pt::MetadataEntry& e : trailers) {
        if (e.first.empty() || e.first.front() == ':' || hop_by_hop(e.first)) {
            continue;
        }
        if (e.first == "grpc-status") {
            has_status = true;
            meter_.end(grpc::parse_status(e.second).value_or(grpc::StatusCode::Unknown),
                       conn_.ctx_.now_ns);
        }
        out.push_back({std::string(e.first), std::string(e.second)});
    }
    if (!has_status) {
        meter_.end(grpc::StatusCode::Internal, conn_.ctx_.now_ns);
        out.push_back({"grpc-status", std::string(grpc::status_text(grpc::StatusCode::Internal))});
        out.push_back({"grpc-message", "the far side ended the call without a status"});
    }
    // The far side is done; ours ends when the client's request does (or now, answered).
    if (!request_ended_) {
        stream_->finish();
        request_ended_ = true;
    }
    tunnel::Stream* s = stream_;
    stream_ = nullptr;
    s->detach();
    outbox_.drop_partial(conn_.ctx_);  // a message cut off by the trailers never ends
    set_trailers(std::move(out));
}

void GrpcCall::on_stream_fin() noexcept {
    // A gRPC stream always ends with trailers; a bare FIN lost the status.
    fail(grpc::StatusCode::Internal, "the far side ended the call without a status",
         pt::ErrorCode::Cancel);
}

void GrpcCall::on_stream_reset(pt::ErrorCode code) noexcept {
    stream_ = nullptr;
    if (response_done_) {
        return;
    }
    grpc::StatusCode status = grpc::StatusCode::Internal;
    switch (code) {
        case pt::ErrorCode::RefusedStream:
        case pt::ErrorCode::ConnectRefused:
        case pt::ErrorCode::UnsupportedProtocol:
        case pt::ErrorCode::UpstreamReset:
        case pt::ErrorCode::Shutdown:  // the tunnel under the call went away: retry elsewhere
            status = grpc::StatusCode::Unavailable;
            break;
        case pt::ErrorCode::Timeout:
            status = grpc::StatusCode::DeadlineExceeded;
            break;
        case pt::ErrorCode::Cancel:
            status = grpc::StatusCode::Cancelled;
            break;
        default:
            break;
    }
    char message[96];
    std::snprintf(message, sizeof(message), "the tunnel stream was reset: %s",
                  pt::error_code_name(code));
    fail(status, message, code);
}

void GrpcCall::on_deadline() noexcept {
    deadline_ns_ = 0;
    if (response_done_) {
        return;
    }
    conn_.owner_.log_refusal("gRPC call ended", "grpc-timeout passed");
    fail(grpc::StatusCode::DeadlineExceeded, "deadline exceeded at the gateway",
         pt::ErrorCode::Timeout);
}

void GrpcCall::drop_stream(pt::ErrorCode code) noexcept {
    if (stream_ != nullptr) {
        tunnel::Stream* s = stream_;
        stream_ = nullptr;
        s->reset(code);
    }
}

void GrpcCall::fail(grpc::StatusCode status, std::string_view message,
                    pt::ErrorCode code) noexcept {
    drop_stream(code);
    if (response_done_) {
        return;
    }
    meter_.end(status, conn_.ctx_.now_ns);
    outbox_.clear(conn_.ctx_);
    std::vector<Field> trailers;
    trailers.push_back({"grpc-status", std::string(grpc::status_text(status))});
    trailers.push_back({"grpc-message", std::string(message)});
    if (!headers_sent_) {
        // Trailers-Only (PROTOCOL-HTTP2.md): one HEADERS frame with the status, END_STREAM.
        GrpcHeaderList headers;
        headers.add(":status", "200");
        headers.add("content-type", "application/grpc");
        for (const Field& f : trailers) {
            headers.add_raw(f.name, f.value);
        }
        const std::vector<nghttp2_nv> nv = to_nv(headers);
        headers_sent_ = true;
        response_done_ = true;
        (void)nghttp2_submit_response(conn_.session_, id_, nv.data(), nv.size(), nullptr);
        conn_.want_flush();
        return;
    }
    set_trailers(std::move(trailers));
}

void GrpcCall::set_trailers(std::vector<Field>&& trailers) noexcept {
    if (!headers_sent_) {
        // Trailers with no response headers before them: a Trailers-Only answer.
        start_response(nullptr);
    }
    trailers_ = std::move(trailers);
    trailers_ready_ = true;
    resume();
}

void GrpcCall::resume() noexcept {
    if (deferred_) {
        deferred_ = false;
        nghttp2_session_resume_data(conn_.session_, id_);
    }
    conn_.want_flush();
}

ssize_t GrpcCall::read_response(size_t max, uint32_t* flags) noexcept {
    if (outbox_.ready_bytes() > 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        return static_cast<ssize_t>(std::min<uint64_t>(max, outbox_.ready_bytes()));
    }
    if (!trailers_ready_) {
        deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    GrpcHeaderList list;
    for (const Field& f : trailers_) {
        list.add_raw(f.name, f.value);
    }
    const std::vector<nghttp2_nv> nv = to_nv(list);
    (void)nghttp2_submit_trailer(conn_.session_, id_, nv.data(), nv.size());
    response_done_ = true;
    trailers_.clear();
    return 0;
}

bool GrpcCall::take_response(size_t len) noexcept {
    uint64_t credit = 0;
    const bool whole = outbox_.take(conn_.ctx_, conn_.out_, len, &credit);
    conn_.metrics_.bytes_to_local.add(len);
    if (credit > 0 && stream_ != nullptr) {
        stream_->consumed(static_cast<uint32_t>(credit));
    }
    return whole;
}

void GrpcCall::on_closed(uint32_t h2_error) noexcept {
    deadline_ns_ = 0;
    if (stream_ != nullptr) {
        if (h2_error != NGHTTP2_NO_ERROR) {
            FERRY_LOG(Debug, "gRPC call %d reset by the client (%s)", id_,
                      nghttp2_http2_strerror(h2_error));
        }
        // The client cancelled (RST_STREAM) or went away: the far side hears it.
        drop_stream(pt::ErrorCode::Cancel);
    }
}

// ---- GrpcConnection ---------------------------------------------------------------------------

GrpcConnection::GrpcConnection(loop::Context& ctx, Metrics& metrics,
                               transport::Metrics& transport_metrics, GrpcClients& owner) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      owner_(owner),
      tcp_(ctx, transport_metrics, ctx.local_bufs),
      out_(ctx) {
    metrics_.connections_active.add(1);
}

GrpcConnection::~GrpcConnection() {
    if (session_ != nullptr) {
        nghttp2_session_del(session_);
    }
}

void GrpcConnection::start(int fd, const tls::TlsContext* tls) noexcept {
    tcp_.attach(fd);
    if (tls != nullptr) {
        // A client's TLS keeps its keys for its life (rotation is the tunnel's business).
        tls_ = std::make_unique<transport::TlsTransport>(ctx_, owner_.transport_metrics_, tcp_,
                                                         *tls, transport::TlsOptions{});
        conn_ = tls_.get();
    }
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    // Stream windows return as the tunnel takes the bytes (back-pressure per call).
    nghttp2_option_set_no_auto_window_update(option, 1);
    // Rapid reset is answered by on_frame_recv with ENHANCE_YOUR_CALM; the library's own limit
    // (its GOAWAY says INTERNAL_ERROR) stays behind it as a backstop.
    nghttp2_option_set_stream_reset_rate_limit(option, 2 * kResetBurst, 2 * kResetsPerSecond);
    const int rv = nghttp2_session_server_new2(&session_, server_callbacks(), this, option);
    nghttp2_option_del(option);
    if (rv != 0) {
        FERRY_LOG(Warn, "gRPC connection: nghttp2 session: %s", nghttp2_strerror(rv));
        session_ = nullptr;
        conn_->start(this);
        close();
        return;
    }
    const GrpcClientOptions& o = owner_.options();
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, o.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1U << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, o.max_header_list_size},
    };
    (void)nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 3);
    // The connection window is returned as bytes arrive; a large one keeps many calls moving.
    (void)nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    deadline_ns_ = ctx_.now_ns + o.handshake_ns;
    conn_->start(this);
    want_flush();
}

void GrpcConnection::reject(int fd) noexcept {
    tcp_.attach(fd);
    conn_->start(this);
    close();
}

void GrpcConnection::drain() noexcept {
    if (closing_ || session_ == nullptr || draining_) {
        return;
    }
    draining_ = true;
    // GOAWAY naming the last call taken: those finish, the client opens new ones elsewhere.
    (void)nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                                nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                                nullptr, 0);
    want_flush();
}

void GrpcConnection::tick(uint64_t now_ns) noexcept {
    if (closing_) {
        return;
    }
    if (deadline_ns_ != 0 && now_ns >= deadline_ns_) {
        owner_.log_refusal("gRPC client closed", "no HTTP/2 preface within the connect timeout");
        close();
        return;
    }
    for (GrpcCall* c = calls_; c != nullptr;) {
        GrpcCall* after = c->next;
        if (c->deadline_ns_ != 0 && now_ns >= c->deadline_ns_) {
            c->on_deadline();
        }
        c = after;
    }
}

int GrpcConnection::on_begin_headers(int32_t id) noexcept {
    GrpcCall* call = owner_.calls_pool_.create(*this, id);
    call->next = calls_;
    if (calls_ != nullptr) {
        calls_->prev = call;
    }
    calls_ = call;
    nghttp2_session_set_stream_user_data(session_, id, call);
    return 0;
}

int GrpcConnection::on_header(int32_t id, std::string_view name, std::string_view value) noexcept {
    auto* call = static_cast<GrpcCall*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call == nullptr || call->headers_sent_ || call->stream_ != nullptr) {
        return 0;  // trailers of a request: gRPC clients send none, and none are forwarded
    }
    if (!call->add_header(name, value)) {
        owner_.log_refusal("gRPC call refused", "request header list over its limit");
        // RST_STREAM for this call only; the connection goes on.
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

int GrpcConnection::on_begin_frame(uint8_t type, int32_t id) noexcept {
    // RFC 9113 §5.1.1: a new stream's id must exceed every id the client used before; HEADERS
    // for a lower one that is not open is a connection error PROTOCOL_ERROR. nghttp2 ignores
    // such a block (it cannot tell it from a trailer racing our RST_STREAM); gRPC requests have
    // no trailers, so here it is the error the RFC names (on_transport_read sends the GOAWAY).
    if (type == NGHTTP2_HEADERS && id > 0 &&
        id < nghttp2_session_get_last_proc_stream_id(session_) &&
        nghttp2_session_find_stream(session_, id) == nullptr) {
        owner_.log_refusal("gRPC client connection failed",
                           "HEADERS for a stream id below one used before");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (type == NGHTTP2_SETTINGS) {
        // What a new SETTINGS_INITIAL_WINDOW_SIZE is checked against in on_frame_recv.
        initial_window_before_ =
            nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
        largest_window_before_ = 0;
        for (const GrpcCall* c = calls_; c != nullptr; c = c->next) {
            largest_window_before_ =
                std::max(largest_window_before_,
                         nghttp2_session_get_stream_remote_window_size(session_, c->id()));
        }
    }
    return 0;
}

bool GrpcConnection::take_reset_token() noexcept {
    // Token bucket: kResetBurst at most, kResetsPerSecond back each second.
    constexpr uint64_t kRefillNs = 1'000'000'000 / kResetsPerSecond;
    if (reset_refill_ns_ == 0 || ctx_.now_ns < reset_refill_ns_) {
        reset_refill_ns_ = ctx_.now_ns;
    }
    const uint64_t earned = (ctx_.now_ns - reset_refill_ns_) / kRefillNs;
    if (earned > 0) {
        reset_tokens_ =
            static_cast<uint32_t>(std::min<uint64_t>(kResetBurst, reset_tokens_ + earned));
        reset_refill_ns_ += earned * kRefillNs;
    }
    if (reset_tokens_ == 0) {
        return false;
    }
    --reset_tokens_;
    return true;
}

int GrpcConnection::on_frame_recv(uint8_t type, uint8_t flags, int32_t id) noexcept {
    deadline_ns_ = 0;  // the preface came: nghttp2 delivers no frame before it
    if (type == NGHTTP2_RST_STREAM && !take_reset_token()) {
        // Rapid reset (CVE-2023-44487): each HEADERS opens a tunnel stream that the RST_STREAM
        // right behind it tears down again, so a flood of both costs the far side as much as
        // us. Past the budget the connection ends with ENHANCE_YOUR_CALM (RFC 9113 §7).
        owner_.log_refusal("gRPC client connection closed", "RST_STREAM flood (rapid reset)");
        (void)nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (type == NGHTTP2_SETTINGS && (flags & NGHTTP2_FLAG_ACK) == 0) {
        // RFC 9113 §6.9.2: a new SETTINGS_INITIAL_WINDOW_SIZE that takes a stream window past
        // 2^31-1 is a connection error FLOW_CONTROL_ERROR (nghttp2 resets the stream only).
        const uint32_t now_initial =
            nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
        if (now_initial > initial_window_before_ &&
            int64_t{largest_window_before_} + (now_initial - initial_window_before_) >
                int64_t{NGHTTP2_MAX_WINDOW_SIZE}) {
            owner_.log_refusal("gRPC client connection failed",
                               "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window");
            (void)nghttp2_session_terminate_session(session_, NGHTTP2_FLOW_CONTROL_ERROR);
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }
    if (id == 0) {
        return 0;
    }
    auto* call = static_cast<GrpcCall*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call == nullptr) {
        return 0;
    }
    if (type == NGHTTP2_HEADERS && call->stream_ == nullptr && !call->response_done_ &&
        !call->request_.empty()) {
        call->on_request_headers();
    }
    if ((type == NGHTTP2_HEADERS || type == NGHTTP2_DATA) && (flags & NGHTTP2_FLAG_END_STREAM)) {
        call->on_request_end();
    }
    return 0;
}

int GrpcConnection::on_data_chunk(int32_t id, const uint8_t* data, size_t len) noexcept {
    auto* call = static_cast<GrpcCall*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call == nullptr) {
        nghttp2_session_consume(session_, id, len);
        return 0;
    }
    call->on_request_data(data, len);
    return 0;
}

int GrpcConnection::on_stream_close(int32_t id, uint32_t error_code) noexcept {
    auto* call = static_cast<GrpcCall*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call == nullptr) {
        return 0;
    }
    call->on_closed(error_code);
    if (call->prev != nullptr) {
        call->prev->next = call->next;
    } else {
        calls_ = call->next;
    }
    if (call->next != nullptr) {
        call->next->prev = call->prev;
    }
    nghttp2_session_set_stream_user_data(session_, id, nullptr);
    owner_.calls_pool_.destroy(call);
    return 0;
}

ssize_t GrpcConnection::on_send(const uint8_t* data, size_t len) noexcept {
    return out_.copy_frame(data, len);
}

int GrpcConnection::on_send_data(const uint8_t* framehd, size_t length, GrpcCall* call) noexcept {
    if (!out_.data_header(framehd)) {
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    // The payload: the call's own buffers, in order, after the header (NO_COPY).
    if (!call->take_response(length)) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

void GrpcConnection::on_transport_read(buf::Chunk&& bytes) noexcept {
    if (closing_ || session_ == nullptr) {
        return;
    }
    reading_ = &bytes;
    const ssize_t rv = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    reading_ = nullptr;
    if (rv < 0) {
        // A connection error (bad preface, flood, broken framing): nghttp2 queued a GOAWAY with
        // its code where HTTP/2 has one; it goes out, then the connection ends.
        if (rv != NGHTTP2_ERR_CALLBACK_FAILURE) {  // our callbacks said why themselves
            owner_.log_refusal("gRPC client connection failed",
                               nghttp2_strerror(static_cast<int>(rv)));
        }
        if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
            close();
            return;
        }
        (void)nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    }
    want_flush();
}

void GrpcConnection::flush() noexcept {
    if (closing_ || session_ == nullptr || out_.writing() || !conn_->established()) {
        return;  // (a grpcs:// connection speaks once its TLS handshake is done)
    }
    const int rv = nghttp2_session_send(session_);
    if (rv != 0) {
        FERRY_LOG(Debug, "gRPC connection: send: %s", nghttp2_strerror(rv));
        close();
        return;
    }
    if (out_.write_to(*conn_)) {
        return;
    }
    out_.release_idle();  // an idle connection holds no buffer
    if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
        close();  // GOAWAY both ways (or ours after a drain) and no call left
    }
}

void GrpcConnection::on_transport_written() noexcept {
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

void GrpcConnection::on_transport_down(const char* reason, int err) noexcept {
    FERRY_LOG(Debug, "gRPC client connection: %s: %s", reason, err != 0 ? strerror(err) : "EOF");
    close();
}

void GrpcConnection::close() noexcept {
    if (closing_) {
        return;
    }
    closing_ = true;
    // Calls still open end with the connection: their tunnel streams are reset.
    while (calls_ != nullptr) {
        GrpcCall* call = calls_;
        calls_ = call->next;
        call->on_closed(NGHTTP2_CANCEL);
        owner_.calls_pool_.destroy(call);
    }
    out_.clear();
    conn_->close();
}

void GrpcConnection::on_transport_quiescent() noexcept {
    if (!closing_) {
        close();
    }
    ctx_.defer_retire(this);
}

void GrpcConnection::retire() noexcept {
    metrics_.connections_active.add(-1);
    if (slot_ != nullptr) {
        slot_->release();
    }
    owner_.unlink(this);
    owner_.connections_pool_.destroy(this);
}

// ---- GrpcClients ------------------------------------------------------------------------------

GrpcClients::GrpcClients(loop::Context& ctx, Metrics& metrics,
                         transport::Metrics& transport_metrics, StreamOpener& opener,
                         GrpcClientOptions options) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      transport_metrics_(transport_metrics),
      opener_(opener),
      options_(std::move(options)) {}

GrpcClients::~GrpcClients() {
    // At shard exit: the sessions' memory goes; the pools abandon the objects themselves.
    for (GrpcConnection* c = connections_; c != nullptr; c = c->next) {
        for (GrpcCall* call = c->calls_; call != nullptr; call = call->next) {
            call->outbox_.clear(ctx_);
            std::vector<GrpcCall::Field>().swap(call->request_);
            std::vector<GrpcCall::Field>().swap(call->trailers_);
        }
        c->out_.clear();
        if (c->session_ != nullptr) {
            nghttp2_session_del(c->session_);
            c->session_ = nullptr;
        }
    }
}

void GrpcClients::on_client(int fd, const ServiceUrl& listener) noexcept {
    GrpcConnection* c = connections_pool_.create(ctx_, metrics_, transport_metrics_, *this);
    c->next = connections_;
    if (connections_ != nullptr) {
        connections_->prev = c;
    }
    connections_ = c;
    if (draining_) {
        metrics_.connections_rejected.add();
        c->reject(fd);
        return;
    }
    if (!options_.process->connections.try_acquire()) {
        metrics_.connections_rejected.add();
        FERRY_LOG_LIMITED(refusal_log_, ctx_.now_ns, Warn,
                          "client on %s refused: --max-connections (%u) reached in this process",
                          listener.text, options_.process->connections.max());
        c->reject(fd);
        return;
    }
    metrics_.connections_accepted.add();
    c->hold_slot(&options_.process->connections);
    c->start(fd, listener.tls() && tls_ != nullptr ? &tls_->context() : nullptr);
}

absl::Status GrpcClients::prepare() noexcept {
    if (!options_.serves_tls || tls_ != nullptr) {
        return absl::OkStatus();
    }
    TunnelSecurity sec;
    sec.tls = true;
    sec.tls_config = options_.listener_tls;
    absl::StatusOr<std::unique_ptr<ShardTls>> tls = ShardTls::create(sec);
    if (!tls.ok()) {
        return tls.status();
    }
    tls_ = *std::move(tls);
    return absl::OkStatus();
}

void GrpcClients::reload() noexcept {
    if (tls_ != nullptr) {
        tls_->reload_now();
    }
}

void GrpcClients::tick(uint64_t now_ns) noexcept {
    if (tls_ != nullptr) {
        tls_->maybe_reload(now_ns);
    }
    for (GrpcConnection* c = connections_; c != nullptr;) {
        GrpcConnection* next = c->next;
        c->tick(now_ns);
        c = next;
    }
}

void GrpcClients::drain() noexcept {
    draining_ = true;
    for (GrpcConnection* c = connections_; c != nullptr; c = c->next) {
        c->drain();
    }
}

void GrpcClients::unlink(GrpcConnection* c) noexcept {
    if (c->prev != nullptr) {
        c->prev->next = c->next;
    } else if (connections_ == c) {
        connections_ = c->next;
    }
    if (c->next != nullptr) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = nullptr;
}

}  // namespace ferry::role
