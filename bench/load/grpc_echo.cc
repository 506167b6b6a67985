#include "grpc_echo.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace ferry::bench {

// One call: its request body as it came, and how much of it went back.
struct GrpcEchoSession::Call {
    int32_t id = 0;
    std::vector<uint8_t> body;
    size_t sent = 0;
    bool request_ended = false;
    bool responding = false;
    bool deferred = false;
};

namespace {

GrpcEchoSession* self(void* user) { return static_cast<GrpcEchoSession*>(user); }

nghttp2_nv nv(const char* name, const char* value) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
            reinterpret_cast<uint8_t*>(const_cast<char*>(value)), std::strlen(name),
            std::strlen(value), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

nghttp2_session_callbacks* callbacks() {
    static nghttp2_session_callbacks* cbs = [] {
        nghttp2_session_callbacks* c = nullptr;
        nghttp2_session_callbacks_new(&c);
        nghttp2_session_callbacks_set_on_begin_headers_callback(
            c, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
                return f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST
                           ? self(u)->on_begin_headers(f->hd.stream_id)
                           : 0;
            });
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
            c, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* u) {
                return self(u)->on_data(id, d, n);
            });
        nghttp2_session_callbacks_set_on_frame_recv_callback(
            c, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
                return self(u)->on_frame(f->hd.type, f->hd.flags, f->hd.stream_id);
            });
        nghttp2_session_callbacks_set_on_stream_close_callback(
            c,
            [](nghttp2_session*, int32_t id, uint32_t, void* u) { return self(u)->on_close(id); });
        return c;
    }();
    return cbs;
}

ssize_t read_cb(nghttp2_session* s, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                nghttp2_data_source*, void* u) {
    auto* call = static_cast<GrpcEchoSession::Call*>(nghttp2_session_get_stream_user_data(s, id));
    if (call == nullptr) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return self(u)->read_body(*call, buf, len, flags);
}

}  // namespace

GrpcEchoSession::GrpcEchoSession() noexcept {
    if (nghttp2_session_server_new(&session_, callbacks(), this) != 0) {
        session_ = nullptr;
        failed_ = true;
        return;
    }
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 4096},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1U << 20},
    };
    (void)nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
    (void)nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
}

GrpcEchoSession::~GrpcEchoSession() {
    if (session_ != nullptr) {
        nghttp2_session_del(session_);  // calls_ frees the calls still open
    }
}

int GrpcEchoSession::on_begin_headers(int32_t id) noexcept {
    auto call = std::make_unique<Call>();
    call->id = id;
    nghttp2_session_set_stream_user_data(session_, id, call.get());
    calls_[id] = std::move(call);
    return 0;
}

int GrpcEchoSession::on_data(int32_t id, const uint8_t* data, size_t len) noexcept {
    auto* call = static_cast<Call*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call != nullptr) {
        call->body.insert(call->body.end(), data, data + len);
        if (call->deferred) {
            call->deferred = false;
            (void)nghttp2_session_resume_data(session_, id);
        }
    }
    return 0;
}

int GrpcEchoSession::on_frame(uint8_t type, uint8_t flags, int32_t id) noexcept {
    auto* call = static_cast<Call*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call == nullptr || (type != NGHTTP2_HEADERS && type != NGHTTP2_DATA)) {
        return 0;
    }
    if (flags & NGHTTP2_FLAG_END_STREAM) {
        call->request_ended = true;
        if (call->deferred) {
            call->deferred = false;
            (void)nghttp2_session_resume_data(session_, id);
        }
    }
    if (type == NGHTTP2_HEADERS && !call->responding) {
        // The response starts at once: a bidi call's messages come back as they arrive.
        call->responding = true;
        const nghttp2_nv head[] = {nv(":status", "200"), nv("content-type", "application/grpc")};
        nghttp2_data_provider provider{};
        provider.read_callback = read_cb;
        (void)nghttp2_submit_response(session_, id, head, 2, &provider);
    }
    return 0;
}

ssize_t GrpcEchoSession::read_body(Call& call, uint8_t* buf, size_t len, uint32_t* flags) noexcept {
    const size_t n = std::min(len, call.body.size() - call.sent);
    if (n > 0) {
        std::memcpy(buf, call.body.data() + call.sent, n);
        call.sent += n;
        if (call.sent == call.body.size()) {
            call.body.clear();
            call.sent = 0;
        }
        return static_cast<ssize_t>(n);
    }
    if (!call.request_ended) {
        call.deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    const nghttp2_nv trailers[] = {nv("grpc-status", "0")};
    (void)nghttp2_submit_trailer(session_, call.id, trailers, 1);
    ++answered_;
    return 0;
}

int GrpcEchoSession::on_close(int32_t id) noexcept {
    auto* call = static_cast<Call*>(nghttp2_session_get_stream_user_data(session_, id));
    if (call != nullptr) {
        nghttp2_session_set_stream_user_data(session_, id, nullptr);
        calls_.erase(id);
    }
    return 0;
}

EchoSession::Next GrpcEchoSession::feed(std::span<std::byte> input) noexcept {
    if (failed_) {
        return Next::Close;
    }
    const ssize_t rv = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(input.data()), input.size());
    if (rv < 0) {
        // A broken client: nghttp2 queued its GOAWAY; it goes out, then the connection closes.
        (void)nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
        failed_ = true;
    }
    return drain();
}

EchoSession::Next GrpcEchoSession::drain() noexcept {
    for (;;) {
        const uint8_t* data = nullptr;
        const ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n <= 0) {
            break;
        }
        const auto* b = reinterpret_cast<const std::byte*>(data);
        out_.insert(out_.end(), b, b + n);
    }
    if (failed_ ||
        (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0)) {
        return Next::Close;
    }
    return Next::Continue;
}

}  // namespace ferry::bench
