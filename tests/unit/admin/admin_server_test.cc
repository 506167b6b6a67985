#include "ferry/admin/admin_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "ferry/loop/context_owner.h"

namespace ferry::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class AdminServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        loop::ContextOptions options;
        options.ring.entries = 64;
        options.buffer_size = 4096;
        options.buffer_count = 64;
        options.buffer_ring_entries = 16;
        options.tunnel_buffer_count = 64;
        options.tunnel_buffer_ring_entries = 16;
        absl::StatusOr<std::unique_ptr<loop::ContextOwner>> owner =
            loop::ContextOwner::create(options, loop_[0]);
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

TEST_F(AdminServerTest, UnknownPathsAndWrongMethodsAreRefused) {
    EXPECT_THAT(server_->respond("GET", "/nope"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
    EXPECT_THAT(server_->respond("POST", "/metrics"),
                StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
}

}  // namespace
}  // namespace ferry::admin
