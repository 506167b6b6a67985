#include "ferry/admin/admin_server.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ferry/base/log.h"
#include "ferry/io/socket_io.h"
#include "ferry/proto/http1/request_parser.h"

namespace ferry::admin {

const char* reason_phrase(int status) noexcept {
    // RFC 9110 §15.
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 411:
            return "Length Required";
        case 413:
            return "Content Too Large";
        case 414:
            return "URI Too Long";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Error";
    }
}

std::string http_response(int code, std::string_view content_type, std::string_view body,
                          bool head) {
    return absl::StrFormat(
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %u\r\nCache-Control: no-store\r\n"
        "Connection: close\r\n\r\n%s",
        code, reason_phrase(code), content_type, body.size(), head ? "" : body);
}

// One admin request/response on its own socket.
class AdminConnection final : private io::SocketEvents,
                              private role::AdminReply,
                              public loop::Retirable {
  public:
    AdminConnection(AdminServer* server, int fd, uint64_t now_ns) noexcept
        : server_(server),
          io_(server->ctx_, server->ctx_.local_bufs, this),
          parser_(4096),
          accepted_ns_(now_ns) {
        io_.attach(fd);
        io_.start_reading();
    }
    void close() noexcept { io_.close(); }

    void retire() noexcept override { server_->connections_->destroy(this); }

    // Still waiting for (the rest of) its request: such a connection may be closed to make room.
    [[nodiscard]] bool waiting() const noexcept {
        return !answered_ && endpoint_ == nullptr && !io_.closing();
    }
    [[nodiscard]] uint64_t accepted_ns() const noexcept { return accepted_ns_; }

  private:
    void on_socket_data(buf::Chunk&& bytes) noexcept override {
        if (answered_ || endpoint_ != nullptr) {
            return;
        }
        std::span<const std::byte> in = bytes.span();
        if (!head_done_) {
            proto::http1::ParseResult r = parser_.feed(in);
            if (r.status == proto::http1::ParseStatus::NeedMore) {
                return;
            }
            if (r.status == proto::http1::ParseStatus::Error) {
                FERRY_LOG(Debug, "admin: bad request: %s", r.detail);
                send(http_response(r.http_status, "text/plain", absl::StrCat(r.detail, "\n")));
                return;
            }
            head_done_ = true;
            in = in.subspan(r.consumed);
            routed_ = server_->route(parser_.path());
            if (routed_ == nullptr) {
                send(server_->respond(parser_.method(), parser_.path()));
                return;
            }
            if (parser_.chunked()) {
                send(http_response(411, "text/plain",
                                   "send the body with a Content-Length, not chunked\n"));
                return;
            }
            if (parser_.content_length() > static_cast<int64_t>(kMaxAdminBody)) {
                send(http_response(413, "text/plain",
                                   absl::StrFormat("body over %u bytes\n", kMaxAdminBody)));
                return;
            }
            body_want_ = static_cast<size_t>(std::max<int64_t>(parser_.content_length(), 0));
            body_.reserve(body_want_);
        }
        const size_t take = std::min(in.size(), body_want_ - body_.size());
        body_.append(reinterpret_cast<const char*>(in.data()), take);
        if (body_.size() < body_want_) {
            return;
        }
        // The endpoint answers through respond(), maybe later. Reading goes on meanwhile so the
        // client's going away (EOF, as nginx takes it) is seen and passed on as cancel().
        endpoint_ = routed_;
        endpoint_->serve(parser_.method(), parser_.query(), body_, *this);
    }
    void respond(int status, std::string_view content_type,
                 std::string_view body) noexcept override {
        endpoint_ = nullptr;
        send(http_response(status, content_type, body));
    }
    void send(std::string response) noexcept {
        answered_ = true;
        io_.pause_reading();
        response_ = std::move(response);
        iov_.iov_base = response_.data();
        iov_.iov_len = response_.size();
        io_.send(&iov_, 1, response_.size());
    }
    void on_socket_eof() noexcept override {
        if (!answered_) {
            io_.close();  // gone before its answer: an endpoint serving it hears cancel()
        }
    }
    void on_socket_error(const char*, int) noexcept override { io_.close(); }
    void on_socket_sent() noexcept override {
        io_.shutdown_write();
        io_.close();
    }
    void on_socket_connected(int) noexcept override {}
    void on_socket_closed() noexcept override {
        if (endpoint_ != nullptr) {
            std::exchange(endpoint_, nullptr)->cancel(*this);
        }
        server_->forget(this);
        server_->ctx_.defer_retire(this);
    }

    AdminServer* server_;
    io::SocketIo io_;
    proto::http1::RequestParser parser_;
    std::string response_;
    std::string body_;
    size_t body_want_ = 0;
    role::AdminEndpoint* routed_ = nullptr;    // the path's endpoint, once the head is in
    role::AdminEndpoint* endpoint_ = nullptr;  // serving the request; owes respond()
    iovec iov_{};
    uint64_t accepted_ns_;
    bool head_done_ = false;
    bool answered_ = false;
};

AdminServer::AdminServer(loop::Context& ctx, AdminConfig config) noexcept
    : ctx_(ctx),
      config_(std::move(config)),
      acceptor_(ctx.ring, this),
      connections_(std::make_unique<base::ObjectPool<AdminConnection>>()) {}

AdminServer::~AdminServer() = default;

bool AdminServer::start() noexcept {
    if (absl::Status st = acceptor_.listen(config_.listen, 64); !st.ok()) {
        FERRY_LOG(Error, "admin: %s", st.message());
        return false;
    }
    acceptor_.start();
    FERRY_LOG(Info, "admin listening on %s", config_.listen.to_string());
    return true;
}

// The probes must keep working while the process drains: /health stays 200 and /ready turns
// 503, until the shard exits (the admin port never holds that up).
void AdminServer::drain() noexcept { draining_ = true; }

bool AdminServer::idle() const noexcept { return true; }

void AdminServer::tick(uint64_t now_ns) noexcept {
    // A connection that has not sent its whole request in time is closed: slow or idle clients
    // must not hold the port the probes need.
    for (AdminConnection* c : open_) {
        if (c->waiting() && now_ns - c->accepted_ns() > config_.timeout_ns) {
            ++timed_out_;
            c->close();
        }
    }
}

void AdminServer::forget(AdminConnection* c) noexcept {
    open_.erase(std::remove(open_.begin(), open_.end(), c), open_.end());
}

void AdminServer::on_accepted(int fd) noexcept {
    if (open_.size() >= config_.max_connections) {
        // Full: the connection that has waited longest for its request makes room; one that is
        // being answered is left to finish. Only when every one is answering is this refused.
        AdminConnection* oldest = nullptr;
        for (AdminConnection* c : open_) {
            if (c->waiting() && (oldest == nullptr || c->accepted_ns() < oldest->accepted_ns())) {
                oldest = c;
            }
        }
        if (oldest == nullptr) {
            ::close(fd);
            return;
        }
        ++evicted_;
        oldest->close();
    }
    open_.push_back(connections_->create(this, fd, ctx_.now_ns));
}

role::AdminEndpoint* AdminServer::route(std::string_view path) const noexcept {
    for (const AdminRoute& r : config_.routes) {
        if (r.path == path) {
            return r.endpoint;
        }
    }
    return nullptr;
}

std::string AdminServer::respond(std::string_view method, std::string_view path) const {
    // HEAD is GET without the body (RFC 9110 §9.3.2).
    const bool head = method == "HEAD";
    const bool get = method == "GET" || head;
    if (path == "/health" || path == "/ready" || path == "/metrics") {
        if (!get) {
            return http_response(405, "text/plain", "use GET or HEAD\n");
        }
    }
    if (path == "/health") {
        return http_response(200, "text/plain", "ok\n", head);
    }
    if (path == "/ready") {
        if (draining_) {
            return http_response(503, "text/plain", "not ready: draining\n", head);
        }
        std::string not_ready;
        for (size_t i = 0; i < config_.shard_metrics.size(); ++i) {
            if (config_.shard_metrics[i]->role.ready.value() == 0) {
                absl::StrAppendFormat(&not_ready, "%s%u", not_ready.empty() ? "" : ",", i);
            }
        }
        if (not_ready.empty()) {
            return http_response(200, "text/plain", "ready\n", head);
        }
        return http_response(503, "text/plain",
                             absl::StrFormat("not ready: shard(s) %s have no tunnel\n", not_ready),
                             head);
    }
    if (path == "/metrics") {
        std::string body = render_metrics(config_.loop_metrics, config_.shard_metrics, config_.role,
                                          config_.node_name);
        render_node_metrics(config_.node, config_.ktls_usable, &body);
        absl::StrAppendFormat(&body,
                              "# HELP ferry_admin_connections_timed_out_total Admin connections "
                              "closed for not sending a request in time\n"
                              "# TYPE ferry_admin_connections_timed_out_total counter\n"
                              "ferry_admin_connections_timed_out_total %u\n"
                              "# HELP ferry_admin_connections_evicted_total Admin connections "
                              "closed to make room for a new one\n"
                              "# TYPE ferry_admin_connections_evicted_total counter\n"
                              "ferry_admin_connections_evicted_total %u\n",
                              timed_out_, evicted_);
        return http_response(200, "text/plain; version=0.0.4", body, head);
    }
    return http_response(404, "text/plain", "not found\n", head);
}

}  // namespace ferry::admin
