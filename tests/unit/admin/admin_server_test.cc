#include "ferry/admin/admin_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ferry/base/clock.h"
#include "ferry/loop/context_owner.h"

namespace ferry::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A loop context with small pools: the admin port needs little.
loop::ContextOptions small_loop() {
    loop::ContextOptions options;
    options.ring.entries = 64;
    options.buffer_size = 4096;
    options.buffer_count = 64;
    options.buffer_ring_entries = 16;
    options.tunnel_buffer_count = 64;
    options.tunnel_buffer_ring_entries = 16;
    return options;
}

class AdminServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        absl::StatusOr<std::unique_ptr<loop::ContextOwner>> owner =
            loop::ContextOwner::create(small_loop(), loop_[0]);
        if (!owner.ok()) {
            GTEST_SKIP() << owner.status();
        }
        owner_ = *std::move(owner);
        AdminConfig config;
        config.role = "initiator";
        config.node_name = "node-a";
        for (size_t i = 0; i < 2; ++i) {
            config.loop_metrics.push_back(&loop_[i]);
            config.shard_metrics.push_back(&shards_[i]);
        }
        server_ = std::make_unique<AdminServer>(owner_->context(), std::move(config));
    }

    loop::Metrics loop_[2];
    role::ShardMetrics shards_[2];
    std::unique_ptr<loop::ContextOwner> owner_;
    std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, HealthIsAlwaysOk) {
    EXPECT_THAT(server_->respond("GET", "/health"), StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST_F(AdminServerTest, ReadyNamesEveryShardWithoutATunnelUntilAllHaveOne) {
    std::string r = server_->respond("GET", "/ready");
    EXPECT_THAT(r, StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
    EXPECT_THAT(r, HasSubstr("shard(s) 0,1"));
    shards_[0].role.ready.set(1);
    r = server_->respond("GET", "/ready");
    EXPECT_THAT(r, StartsWith("HTTP/1.1 503"));
    EXPECT_THAT(r, HasSubstr("shard(s) 1 have no tunnel"));
    shards_[1].role.ready.set(1);
    EXPECT_THAT(server_->respond("GET", "/ready"), StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST_F(AdminServerTest, MetricsRenderEveryModulesCountersPerShard) {
    shards_[1].role.connections_accepted.add(7);
    shards_[0].tunnel.frames_in.add(3);
    shards_[1].transport.tls_handshakes.add(2);
    loop_[0].socket.recv_no_buffers.add(5);
    loop_[1].tunnel_buffers_in_use.set(9);
    const std::string r = server_->respond("GET", "/metrics");
    EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4"));
    EXPECT_THAT(r, HasSubstr("ferry_info{role=\"initiator\",node=\"node-a\",shards=\"2\"} 1\n"));
    EXPECT_THAT(r, HasSubstr("# TYPE ferry_connections_accepted_total counter\n"));
    EXPECT_THAT(r, HasSubstr("ferry_connections_accepted_total{shard=\"1\"} 7\n"));
    EXPECT_THAT(r, HasSubstr("ferry_frames_in_total{shard=\"0\"} 3\n"));
    EXPECT_THAT(r, HasSubstr("ferry_tls_handshakes_total{shard=\"1\"} 2\n"));
    EXPECT_THAT(r, HasSubstr("ferry_recv_no_buffers_total{shard=\"0\"} 5\n"));
    EXPECT_THAT(r, HasSubstr("# TYPE ferry_tunnel_buffers_in_use gauge\n"));
    EXPECT_THAT(r, HasSubstr("ferry_tunnel_buffers_in_use{shard=\"1\"} 9\n"));
    EXPECT_THAT(r, Not(HasSubstr("shard=\"2\"")));
}

TEST_F(AdminServerTest, MetricsHaveNoPeerSeriesWithoutPeers) {
    EXPECT_THAT(server_->respond("GET", "/metrics"), Not(HasSubstr("ferry_peer_")));
}

TEST_F(AdminServerTest, MetricsRenderEachPeerPerShard) {
    for (role::ShardMetrics& s : shards_) {
        s.peers.emplace_back("10.0.0.1:7443");
        s.peers.emplace_back("10.0.0.2:7443");
    }
    shards_[0].peers[1].streams.add(4);
    shards_[1].peers[0].streams_open.set(2);
    shards_[1].peers[1].up.set(1);
    const std::string r = server_->respond("GET", "/metrics");
    EXPECT_THAT(r, HasSubstr("# TYPE ferry_peer_streams_total counter\n"));
    EXPECT_THAT(r, HasSubstr("ferry_peer_streams_total{shard=\"0\",peer=\"10.0.0.2:7443\"} 4\n"));
    EXPECT_THAT(r, HasSubstr("ferry_peer_streams_total{shard=\"1\",peer=\"10.0.0.1:7443\"} 0\n"));
    EXPECT_THAT(r, HasSubstr("ferry_peer_streams_active{shard=\"1\",peer=\"10.0.0.1:7443\"} 2\n"));
    EXPECT_THAT(r, HasSubstr("# TYPE ferry_peer_up gauge\n"));
    EXPECT_THAT(r, HasSubstr("ferry_peer_up{shard=\"1\",peer=\"10.0.0.2:7443\"} 1\n"));
    EXPECT_THAT(r, HasSubstr("ferry_peer_up{shard=\"0\",peer=\"10.0.0.2:7443\"} 0\n"));
}

TEST_F(AdminServerTest, GrpcCallMetricsAreSummedOverShardsWithBucketsAndCodes) {
    // Shard 0: an OK call of 2 ms; shard 1: an UNAVAILABLE one of 20 s and one still open.
    role::GrpcCallMeter a;
    a.start(shards_[0].role.grpc_listener, 1'000'000);
    a.message_in();
    a.message_out();
    a.end(proto::grpc::StatusCode::Ok, 3'000'000);
    a.end(proto::grpc::StatusCode::Internal, 4'000'000);  // counted once
    role::GrpcCallMeter b;
    b.start(shards_[1].role.grpc_listener, 0);
    b.end(proto::grpc::StatusCode::Unavailable, 20'000'000'000);
    role::GrpcCallMeter c;
    c.start(shards_[1].role.grpc_listener, 0);
    const std::string r = server_->respond("GET", "/metrics");
    EXPECT_THAT(r, HasSubstr("# TYPE ferry_grpc_calls_total counter\n"));
    EXPECT_THAT(r, HasSubstr("ferry_grpc_calls_total{side=\"listener\",code=\"OK\"} 1\n"));
    EXPECT_THAT(r, HasSubstr("ferry_grpc_calls_total{side=\"listener\",code=\"UNAVAILABLE\"} 1\n"));
    EXPECT_THAT(r, HasSubstr("ferry_grpc_calls_total{side=\"listener\",code=\"INTERNAL\"} 0\n"));
    EXPECT_THAT(r, HasSubstr("ferry_grpc_calls_active{side=\"listener\"} 1\n"));
    EXPECT_THAT(r, HasSubstr("ferry_grpc_messages_total{side=\"listener\",direction=\"in\"} 1\n"));
    EXPECT_THAT(r, HasSubstr("# TYPE ferry_grpc_call_duration_seconds histogram\n"));
    EXPECT_THAT(
        r,
        HasSubstr("ferry_grpc_call_duration_seconds_bucket{side=\"listener\",le=\"0.001\"} 0\n"));
    EXPECT_THAT(
        r,
        HasSubstr("ferry_grpc_call_duration_seconds_bucket{side=\"listener\",le=\"0.005\"} 1\n"));
    EXPECT_THAT(
        r, HasSubstr("ferry_grpc_call_duration_seconds_bucket{side=\"listener\",le=\"10\"} 1\n"));
    EXPECT_THAT(
        r, HasSubstr("ferry_grpc_call_duration_seconds_bucket{side=\"listener\",le=\"60\"} 2\n"));
    EXPECT_THAT(
        r, HasSubstr("ferry_grpc_call_duration_seconds_bucket{side=\"listener\",le=\"+Inf\"} 2\n"));
    EXPECT_THAT(r,
                HasSubstr("ferry_grpc_call_duration_seconds_sum{side=\"listener\"} 20.002000\n"));
    EXPECT_THAT(r, HasSubstr("ferry_grpc_call_duration_seconds_count{side=\"listener\"} 2\n"));
    // The terminator's sides belong to the terminator.
    EXPECT_THAT(r, Not(HasSubstr("side=\"sink\"")));
    c.end(proto::grpc::StatusCode::Cancelled, 0);
}

TEST_F(AdminServerTest, UnknownPathsAndWrongMethodsAreRefused) {
    EXPECT_THAT(server_->respond("GET", "/nope"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
    EXPECT_THAT(server_->respond("POST", "/metrics"),
                StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
}

// An endpoint that records what it was given and answers at once or when told.
class RecordingEndpoint final : public role::AdminEndpoint {
  public:
    void serve(std::string_view method, std::string_view query, std::string_view body,
               role::AdminReply& reply) noexcept override {
        methods.emplace_back(method);
        queries.emplace_back(query);
        bodies.emplace_back(body);
        if (answer_now) {
            reply.respond(200, "application/json", "{\"got\":" + std::to_string(body.size()) + "}");
        } else {
            pending = &reply;
        }
    }
    void cancel(role::AdminReply& reply) noexcept override {
        if (pending == &reply) {
            pending = nullptr;
            ++cancelled;
        }
    }
    bool answer_now = true;
    role::AdminReply* pending = nullptr;
    int cancelled = 0;
    std::vector<std::string> methods;
    std::vector<std::string> bodies;
    std::vector<std::string> queries;
};

// A server on a loopback port, driven by the test's own loop, with a client on a thread.
class AdminEndpointTest : public ::testing::Test {
  protected:
    void SetUp() override {
        absl::StatusOr<std::unique_ptr<loop::ContextOwner>> owner =
            loop::ContextOwner::create(small_loop(), loop_);
        if (!owner.ok()) {
            GTEST_SKIP() << owner.status();
        }
        owner_ = *std::move(owner);
        port_ = free_port();
        AdminConfig config;
        config.role = "initiator";
        config.node_name = "node-a";
        config.listen = *io::parse_address("127.0.0.1:" + std::to_string(port_));
        config.loop_metrics.push_back(&loop_);
        config.shard_metrics.push_back(&shard_);
        config.routes.push_back({"/trigger", &endpoint_});
        server_ = std::make_unique<AdminServer>(owner_->context(), std::move(config));
        ASSERT_TRUE(server_->start());
    }
    void TearDown() override {
        server_.reset();
        owner_.reset();
    }
    static uint16_t free_port() {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
        socklen_t len = sizeof(a);
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        close(fd);
        return ntohs(a.sin_port);
    }
    // Runs the loop until `done` or 10 s.
    template <class F>
    bool pump_until(F done) {
        loop::Context& ctx = owner_->context();
        const uint64_t deadline = base::mono_ns() + 10'000'000'000ULL;
        while (!done() && base::mono_ns() < deadline) {
            __kernel_timespec ts{0, 20'000'000};
            io_uring_cqe* cqe = nullptr;
            (void)io_uring_submit_and_wait_timeout(ctx.ring.raw(), &cqe, 1, &ts, nullptr);
            ctx.now_ns = base::mono_ns();
            ctx.ring.dispatch();
            loop::end_of_iteration(ctx);
        }
        return done();
    }
    // Sends `request` from a client thread and returns the whole reply (what was read until the
    // server closed, or 10 s).
    std::string exchange(const std::string& request, bool close_early = false) {
        std::atomic<bool> finished{false};
        std::string reply;
        std::thread client([&] {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(port_);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
                (void)!write(fd, request.data(), request.size());
                if (!close_early) {
                    char buf[4096];
                    pollfd p{fd, POLLIN, 0};
                    while (poll(&p, 1, 10000) > 0) {
                        ssize_t n = read(fd, buf, sizeof(buf));
                        if (n <= 0) {
                            break;
                        }
                        reply.append(buf, static_cast<size_t>(n));
                    }
                } else {
                    usleep(100'000);
                }
            }
            close(fd);
            finished = true;
        });
        EXPECT_TRUE(pump_until([&] { return finished.load(); }));
        client.join();
        return reply;
    }

    loop::Metrics loop_;
    role::ShardMetrics shard_;
    RecordingEndpoint endpoint_;
    uint16_t port_ = 0;
    std::unique_ptr<loop::ContextOwner> owner_;
    std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminEndpointTest, ARegisteredPathGetsTheWholeBodyEvenSplitAcrossReads) {
    const std::string body(3000, 'b');
    const std::string reply =
        exchange("POST /trigger HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n" + body);
    EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\nContent-Type: application/json"));
    EXPECT_THAT(reply, HasSubstr("{\"got\":3000}"));
    ASSERT_EQ(endpoint_.bodies.size(), 1U);
    EXPECT_EQ(endpoint_.bodies[0], body);
    EXPECT_EQ(endpoint_.methods[0], "POST");
    EXPECT_EQ(endpoint_.queries[0], "");
}

TEST_F(AdminEndpointTest, ARegisteredPathGetsItsQuery) {
    const std::string reply = exchange("GET /trigger?key=tenant-7&x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
    ASSERT_EQ(endpoint_.queries.size(), 1U);
    EXPECT_EQ(endpoint_.queries[0], "key=tenant-7&x=1");
}

TEST_F(AdminEndpointTest, ABodyTooLargeOrChunkedIsRefusedWithItsStatus) {
    EXPECT_THAT(exchange("POST /trigger HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"),
                StartsWith("HTTP/1.1 413 Content Too Large\r\n"));
    EXPECT_THAT(exchange("POST /trigger HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "0\r\n\r\n"),
                StartsWith("HTTP/1.1 411 Length Required\r\n"));
    EXPECT_TRUE(endpoint_.bodies.empty());
    // The probes are untouched by routes.
    EXPECT_THAT(exchange("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
                StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST_F(AdminEndpointTest, AClientThatLeavesBeforeTheAnswerCancelsIt) {
    endpoint_.answer_now = false;
    (void)exchange("POST /trigger HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
                   /*close_early=*/true);
    EXPECT_TRUE(pump_until([&] { return endpoint_.cancelled == 1; }));
    EXPECT_EQ(endpoint_.pending, nullptr);
}

}  // namespace
}  // namespace ferry::admin
