// libFuzzer target: the initiator's HTTP/2 server (role::GrpcClients / GrpcConnection over
// nghttp2) on arbitrary client bytes. The input is everything a client sends on one connection,
// preface included; it goes through a real socket into a real shard loop (ring, provided buffers,
// TcpTransport), so the session sees it in the pieces a recv returns. Behind the server runs a
// real tunnel in the same loop: an initiator Session, a terminator Session and the built-in lane7
// sink, so calls are opened, answered (messages, trailers) and reset as in the process. Then the
// client's side ends: the connection must close, and every tunnel stream it opened must end at
// both sides, whatever came before. The harness reads and drops whatever the server writes, so
// output back-pressure never stalls it.
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
#include "ferry/role/grpc_sink.h"
#include "ferry/role/limits.h"
#include "ferry/role/metrics.h"
#include "ferry/transport/tcp_transport.h"
#include "ferry/tunnel/session.h"
#include "ferry/tunnel/tuning.h"

namespace {

using ferry::role::GrpcClientOptions;
using ferry::role::GrpcClients;
namespace pt = ferry::proto::tunnel;

// Both ends of the tunnel. The initiator side opens the calls' streams; the terminator side
// hands them to the lane7 sink. A session that ends is a bug: the server must only ever write
// valid tunnel frames, whatever its client sent.
class Tunnel final : public ferry::role::StreamOpener, public ferry::tunnel::SessionOwner {
  public:
    ferry::tunnel::Session* initiator = nullptr;
    ferry::role::GrpcSink* sink = nullptr;
    int ready = 0;

    ferry::tunnel::Stream* open_stream(pt::StreamProtocol protocol, std::string_view key,
                                       std::span<const pt::MetadataEntry> metadata,
                                       ferry::tunnel::StreamHandler* handler) noexcept override {
        return initiator->open_stream(protocol, key, metadata, handler);
    }
    [[nodiscard]] bool tunnel_usable() const noexcept override { return initiator->usable(); }

    void on_session_ready(ferry::tunnel::Session&) noexcept override { ++ready; }
    ferry::tunnel::OpenDecision on_stream_open(ferry::tunnel::Session& session,
                                               ferry::tunnel::Stream& stream,
                                               const pt::Open& open) noexcept override {
        return sink->open(session, stream, open);
    }
    void on_session_draining(ferry::tunnel::Session&) noexcept override { __builtin_trap(); }
    void on_session_closed(ferry::tunnel::Session&) noexcept override { __builtin_trap(); }
    void on_session_rotation_due(ferry::tunnel::Session&, const char*) noexcept override {}
};

struct Harness {
    ferry::loop::Metrics loop_metrics;
    ferry::role::ShardMetrics metrics;
    ferry::role::ProcessLimits limits{1024, 1024};
    ferry::tunnel::Tuning tuning;
    Tunnel tunnel;
    ferry::role::ServiceUrl listener;
    std::unique_ptr<ferry::loop::ContextOwner> owner;
    std::unique_ptr<ferry::role::GrpcSink> sink;
    std::unique_ptr<ferry::tunnel::Session> initiator;
    std::unique_ptr<ferry::tunnel::Session> terminator;
    std::unique_ptr<GrpcClients> clients;

    Harness() {
        ferry::base::g_log_level.store(static_cast<int>(ferry::base::LogLevel::Off));
        ferry::loop::ContextOptions options;
        options.ring.entries = 256;
        options.buffer_size = 16384;
        options.buffer_count = 256;
        options.buffer_ring_entries = 64;
        options.tunnel_buffer_count = 256;
        options.tunnel_buffer_ring_entries = 64;
        absl::StatusOr<std::unique_ptr<ferry::loop::ContextOwner>> o =
            ferry::loop::ContextOwner::create(options, loop_metrics);
        if (!o.ok()) {
            std::abort();  // no io_uring here: nothing to fuzz
        }
        owner = *std::move(o);
        ferry::loop::Context& ctx = owner->context();

        ferry::role::GrpcSinkOptions s;
        s.node_name = "sink";
        sink = std::make_unique<ferry::role::GrpcSink>(ctx, metrics.role, std::move(s));
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
            std::abort();
        }
        const ferry::tunnel::SessionEnv env{ctx, metrics.tunnel, tuning};
        initiator = std::make_unique<ferry::tunnel::Session>(
            env, &tunnel,
            std::make_unique<ferry::transport::TcpTransport>(ctx, metrics.transport, fds[0]),
            ferry::tunnel::Session::Role::Initiator, "gateway");
        terminator = std::make_unique<ferry::tunnel::Session>(
            env, &tunnel,
            std::make_unique<ferry::transport::TcpTransport>(ctx, metrics.transport, fds[1]),
            ferry::tunnel::Session::Role::Terminator, "sink");
        tunnel.initiator = initiator.get();
        tunnel.sink = sink.get();
        initiator->start();
        terminator->start();
        for (int turns = 0; tunnel.ready < 2; ++turns) {
            if (turns > 10000) {
                std::abort();  // the tunnel never came up: nothing to fuzz
            }
            step();
        }

        GrpcClientOptions g;
        g.process = &limits;
        g.node_name = "fuzz";
        listener.scheme = ferry::role::Scheme::Grpc;
        listener.text = "grpc://fuzz";
        clients = std::make_unique<GrpcClients>(ctx, metrics.role, metrics.client_transport, tunnel,
                                                std::move(g));
    }

    [[nodiscard]] bool settled() const {
        return clients->idle() && initiator->stream_count() == 0 && terminator->stream_count() == 0;
    }

    // One turn of the shard loop (the shard's own order: dispatch, end of iteration, ticks).
    void step(long long wait_ns = 1'000'000) {
        ferry::loop::Context& ctx = owner->context();
        __kernel_timespec ts{0, wait_ns};
        io_uring_cqe* cqe = nullptr;
        (void)io_uring_submit_and_wait_timeout(ctx.ring.raw(), &cqe, 1, &ts, nullptr);
        ctx.now_ns = ferry::base::mono_ns();
        ctx.ring.dispatch();
        ferry::loop::end_of_iteration(ctx);
        if (clients != nullptr) {
            clients->tick(ctx.now_ns);
        }
        initiator->tick(ctx.now_ns);
        terminator->tick(ctx.now_ns);
    }
};

// Loop turns between the last input byte and the client's end, for answers to come back.
constexpr int kGraceTurns = 48;

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

    // Send everything; give the calls a few turns to be answered (the answers travel the tunnel
    // and back); then end the client's side: the server must wind the connection up.
    size_t sent = 0;
    int grace = 0;
    bool shut = false;
    bool open = true;
    for (int turns = 0; !h->settled(); ++turns) {
        if (turns > 20000) {
            // The client went away but its connection, or a tunnel stream it opened, never ended.
            __builtin_trap();
        }
        while (sent < size) {
            const ssize_t n = send(client, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n <= 0) {
                break;
            }
            sent += static_cast<size_t>(n);
        }
        if (sent == size && !shut &&
            (++grace > kGraceTurns || (h->initiator->stream_count() == 0 && grace > 1))) {
            (void)shutdown(client, SHUT_WR);
            shut = true;
        }
        if (open) {
            open = drain(client);
        }
        h->step(shut ? 1'000'000 : 200'000);
        if (!open && sent < size) {
            sent = size;  // the server closed: the rest can never go
        }
    }
    close(client);
    return 0;
}
