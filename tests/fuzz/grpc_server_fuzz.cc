// libFuzzer target: the initiator's HTTP/2 server (role::GrpcClients / GrpcConnection over
// nghttp2) on arbitrary client bytes. The input is everything a client sends on one connection,
// preface included; it goes through a real socket into a real shard loop (ring, provided buffers,
// TcpTransport), so the session sees it in the pieces a recv returns. Then the client's side
// ends: the connection must close and give back everything it held, whatever came before.
//
// No tunnel is up (the stream opener has none to offer), so every complete request is answered
// by the server itself: UNAVAILABLE, 405, 415 or a stream error. The harness reads and drops
// whatever the server writes, so output back-pressure never stalls it.
#include <fcntl.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "ferry/base/clock.h"
#include "ferry/base/log.h"
#include "ferry/loop/context.h"
#include "ferry/loop/context_owner.h"
#include "ferry/role/grpc_server.h"
#include "ferry/role/limits.h"
#include "ferry/role/metrics.h"

namespace {

using ferry::role::GrpcClientOptions;
using ferry::role::GrpcClients;
namespace pt = ferry::proto::tunnel;

// No tunnel connection: every call is refused the way a gateway without a usable tunnel
// refuses it.
class NoTunnel final : public ferry::role::StreamOpener {
  public:
    ferry::tunnel::Stream* open_stream(pt::StreamProtocol, std::string_view,
                                       std::span<const pt::MetadataEntry>,
                                       ferry::tunnel::StreamHandler*) noexcept override {
        return nullptr;
    }
    [[nodiscard]] bool tunnel_usable() const noexcept override { return false; }
};

struct Harness {
    ferry::loop::Metrics loop_metrics;
    ferry::role::ShardMetrics metrics;
    ferry::role::ProcessLimits limits{1024, 1024};
    NoTunnel opener;
    ferry::role::ServiceUrl listener;
    std::unique_ptr<ferry::loop::ContextOwner> owner;
    std::unique_ptr<GrpcClients> clients;

    Harness() {
        ferry::base::g_log_level.store(static_cast<int>(ferry::base::LogLevel::Off));
        ferry::loop::ContextOptions options;
        options.ring.entries = 256;
        options.buffer_size = 16384;
        options.buffer_count = 64;
        options.buffer_ring_entries = 32;
        options.tunnel_buffer_count = 16;
        options.tunnel_buffer_ring_entries = 8;
        absl::StatusOr<std::unique_ptr<ferry::loop::ContextOwner>> o =
            ferry::loop::ContextOwner::create(options, loop_metrics);
        if (!o.ok()) {
            std::abort();  // no io_uring here: nothing to fuzz
        }
        owner = *std::move(o);
        GrpcClientOptions g;
        g.process = &limits;
        g.node_name = "fuzz";
        listener.scheme = ferry::role::Scheme::Grpc;
        listener.text = "grpc://fuzz";
        clients = std::make_unique<GrpcClients>(owner->context(), metrics.role,
                                                metrics.client_transport, opener, std::move(g));
    }

    // One turn of the shard loop (the shard's own order: dispatch, end of iteration, ticks).
    void step() {
        ferry::loop::Context& ctx = owner->context();
        __kernel_timespec ts{0, 1'000'000};
        io_uring_cqe* cqe = nullptr;
        (void)io_uring_submit_and_wait_timeout(ctx.ring.raw(), &cqe, 1, &ts, nullptr);
        ctx.now_ns = ferry::base::mono_ns();
        ctx.ring.dispatch();
        ferry::loop::end_of_iteration(ctx);
        clients->tick(ctx.now_ns);
    }
};

// Reads and drops what the server wrote; false once it closed its side.
bool drain(int fd) {
    char buf[65536];
    for (;;) {
        const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0) {
            return false;
        }
        if (n < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Harness* h = new Harness();  // one shard for the whole run, as in the process
    if (size > (256 << 10)) {
        return -1;
    }
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        std::abort();
    }
    const int client = fds[0];
    (void)fcntl(client, F_SETFL, O_NONBLOCK);
    h->clients->on_client(fds[1], h->listener);

    // Send everything, then end the client's side; the server must wind the connection up.
    size_t sent = 0;
    bool shut = false;
    bool open = true;
    for (int turns = 0; !h->clients->idle(); ++turns) {
        if (turns > 20000) {
            __builtin_trap();  // the client went away but the connection never ended
        }
        while (sent < size) {
            const ssize_t n = send(client, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n <= 0) {
                break;
            }
            sent += static_cast<size_t>(n);
        }
        if (sent == size && !shut) {
            (void)shutdown(client, SHUT_WR);
            shut = true;
        }
        if (open) {
            open = drain(client);
        }
        h->step();
        if (!open && sent < size) {
            sent = size;  // the server closed: the rest can never go
        }
    }
    close(client);
    return 0;
}
