#include "ferry/role/tunnel_security.h"

#include "ferry/base/log.h"
#include "ferry/transport/tcp_transport.h"

namespace ferry::role {

absl::StatusOr<std::unique_ptr<ShardTls>> ShardTls::create(const TunnelSecurity& sec) {
    std::unique_ptr<ShardTls> s(new ShardTls(sec));
    if (sec.tls) {
        absl::StatusOr<std::unique_ptr<tls::TlsContext>> ctx =
            tls::TlsContext::create(sec.tls_config);
        if (!ctx.ok()) {
            return ctx.status();
        }
        s->ctx_ = std::move(*ctx);
        s->stamp_ = s->files_stamp();
    }
    return s;
}

std::unique_ptr<transport::Transport> ShardTls::make_transport(loop::Context& ctx,
                                                               transport::Metrics& metrics,
                                                               int fd) const {
    std::unique_ptr<transport::Transport> lower =
        std::make_unique<transport::TcpTransport>(ctx, metrics, fd);
    if (!sec_.tls) {
        return lower;
    }
    if (sec_.ws) {
        lower = std::make_unique<transport::WsTransport>(ctx, metrics, std::move(lower),
                                                         sec_.ws_options);
    } else if (sec_.grpc) {
        lower = std::make_unique<transport::GrpcTransport>(ctx, metrics, std::move(lower),
                                                           sec_.grpc_options);
    }
    return std::make_unique<transport::TlsTransport>(ctx, metrics, std::move(lower), *ctx_,
                                                     sec_.tls_options);
}

int64_t ShardTls::files_stamp() const noexcept {
    // Sum of modification times and sizes: any change of any of the three files moves it.
    int64_t stamp = 0;
    for (const std::string* f :
         {&sec_.tls_config.cert_file, &sec_.tls_config.key_file, &sec_.tls_config.ca_file}) {
        struct stat st {};
        if (!f->empty() && stat(f->c_str(), &st) == 0) {
            stamp += static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec +
                     static_cast<int64_t>(st.st_size);
        }
    }
    return stamp;
}

void ShardTls::maybe_reload(uint64_t now_ns) noexcept {
    if (!sec_.tls || now_ns < next_check_ns_) {
        return;
    }
    next_check_ns_ = now_ns + sec_.reload_check_ns;
    int64_t stamp = files_stamp();
    if (stamp == stamp_) {
        return;
    }
    stamp_ = stamp;
    reload("the certificate files changed");
}

void ShardTls::reload_now() noexcept {
    if (!sec_.tls) {
        FERRY_LOG(Info, "SIGHUP: plain tunnel, no certificates to reload");
        return;
    }
    stamp_ = files_stamp();
    reload("SIGHUP");
}

void ShardTls::reload(const char* why) noexcept {
    if (absl::Status st = ctx_->reload(); !st.ok()) {
        FERRY_LOG(Error, "certificate reload (%s) failed, keeping the previous ones: %s", why,
                  st.message());
        return;
    }
    FERRY_LOG(Info,
              "certificates reloaded (%s; generation %u); tunnel connections rotate onto them "
              "make-before-break",
              why, ctx_->generation());
}

}  // namespace ferry::role
