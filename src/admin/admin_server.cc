#include "ferry/admin/admin_server.h"

#include <unistd.h>

#include "absl/strings/str_format.h"
#include "ferry/base/log.h"
#include "ferry/io/socket_io.h"
#include "ferry/proto/http1/request_parser.h"

namespace ferry::admin {

// One admin request/response on its own socket.
class AdminConnection final : private io::SocketEvents, public loop::Retirable {
  public:
    AdminConnection(AdminServer* server, int fd) noexcept
        : server_(server), io_(server->ctx_, server->ctx_.local_bufs, this), parser_(4096) {
        io_.attach(fd);
        io_.start_reading();
    }
    void close() noexcept { io_.close(); }

    void retire() noexcept override { server_->connections_->destroy(this); }

  private:
    void on_socket_data(buf::Chunk&& bytes) noexcept override {
        if (answered_) {
            return;
        }
        proto::http1::ParseResult r = parser_.feed(bytes.span());
        if (r.status == proto::http1::ParseStatus::NeedMore) {
            return;
        }
        answered_ = true;
        io_.pause_reading();
        if (r.status == proto::http1::ParseStatus::Error) {
            FERRY_LOG(Debug, "admin: bad request: %s", r.detail);
            response_ = absl::StrFormat(
                "HTTP/1.1 %d Bad Request\r\nContent-Type: text/plain\r\nContent-Length: %u\r\n"
                "Connection: close\r\n\r\n%s\n",
                r.http_status, std::string_view(r.detail).size() + 1, r.detail);
        } else {
            response_ = server_->respond(parser_.method(), parser_.path());
        }
        iov_.iov_base = response_.data();
        iov_.iov_len = response_.size();
        io_.send(&iov_, 1, response_.size());
    }
    void on_socket_eof() noexcept override {
        if (!answered_) {
            io_.close();
        }
    }
    void on_socket_error(const char*, int) noexcept override { io_.close(); }
    void on_socket_sent() noexcept override {
        io_.shutdown_write();
        io_.close();
    }
    void on_socket_connected(int) noexcept override {}
    void on_socket_closed() noexcept override { server_->ctx_.defer_retire(this); }

    AdminServer* server_;
    io::SocketIo io_;
    proto::http1::RequestParser parser_;
    std::string response_;
    iovec iov_{};
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

void AdminServer::drain() noexcept { acceptor_.stop(); }

bool AdminServer::idle() const noexcept { return acceptor_.idle() && connections_->live() == 0; }

void AdminServer::on_accepted(int fd) noexcept {
    if (connections_->live() >= config_.max_connections) {
        ::close(fd);
        return;
    }
    AdminConnection* conn = connections_->create(this, fd);
    (void)conn;  // owns itself until its socket closes
}

namespace {

std::string http_response(int code, std::string_view reason, std::string_view content_type,
                          std::string_view body) {
    return absl::StrFormat(
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %u\r\nCache-Control: no-store\r\n"
        "Connection: close\r\n\r\n%s",
        code, reason, content_type, body.size(), body);
}

}  // namespace

std::string AdminServer::respond(std::string_view method, std::string_view path) const {
    bool get = method == "GET";
    if (path == "/health" || path == "/ready" || path == "/metrics") {
        if (!get) {
            return http_response(405, "Method Not Allowed", "text/plain", "use GET\n");
        }
    }
    if (path == "/health") {
        return http_response(200, "OK", "text/plain", "ok\n");
    }
    if (path == "/ready") {
        std::string not_ready;
        for (size_t i = 0; i < config_.shard_metrics.size(); ++i) {
            if (config_.shard_metrics[i]->role.ready.value() == 0) {
                absl::StrAppendFormat(&not_ready, "%s%u", not_ready.empty() ? "" : ",", i);
            }
        }
        if (not_ready.empty()) {
            return http_response(200, "OK", "text/plain", "ready\n");
        }
        return http_response(503, "Service Unavailable", "text/plain",
                             absl::StrFormat("not ready: shard(s) %s have no tunnel\n", not_ready));
    }
    if (path == "/metrics") {
        return http_response(200, "OK", "text/plain; version=0.0.4",
                             render_metrics(config_.loop_metrics, config_.shard_metrics,
                                            config_.role, config_.node_name));
    }
    return http_response(404, "Not Found", "text/plain", "not found\n");
}

}  // namespace ferry::admin
