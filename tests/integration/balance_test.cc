// Shard balance end to end: tunnel connections and the streams they carry spread over every
// terminator shard, and a connection handed between shards loses nothing (docs/shard-balance.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "e2e_harness.h"
#include "process.h"

namespace ferry::e2e {
namespace {

// Per-shard values of a terminator metric.
std::vector<int64_t> per_shard(const Tunnel& t, const std::string& name, int shards) {
    const std::string body = testlib::http_get(t.admin_t_, "/metrics").body;
    std::vector<int64_t> out;
    for (int i = 0; i < shards; ++i) {
        out.push_back(testlib::metric_of_shard(body, name, i));
    }
    return out;
}

std::string text(const std::vector<int64_t>& v) {
    std::string s;
    for (int64_t x : v) {
        if (!s.empty()) {
            s += ' ';
        }
        s += std::to_string(x);
    }
    return s;
}

// SO_REUSEPORT alone puts both initiator shards' connections on one terminator shard about half
// the time; placement must spread them on every start.
TEST_F(E2e, TwoShardsPerEndPutATunnelConnectionOnEachTerminatorShardEveryTime) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    for (int start = 0; start < 4; ++start) {
        SCOPED_TRACE("fresh start " + std::to_string(start));
        Tunnel t(dir_, echo_port, 2);
        ASSERT_TRUE(t.ready());
        ASSERT_TRUE(testlib::wait_until([&] { return t.terminator_metric("ferry_tunnel_up") == 2; },
                                        10000));
        const std::vector<int64_t> up = per_shard(t, "ferry_tunnel_up", 2);
        EXPECT_EQ(up, (std::vector<int64_t>{1, 1})) << "tunnel_up per shard: " << text(up);
        // The hand-off, when there was one, is visible and was counted once each way.
        EXPECT_EQ(t.terminator_metric("ferry_tunnel_handoffs_out_total"),
                  t.terminator_metric("ferry_tunnel_handoffs_in_total"));
    }
}

// Under many clients, both terminator shards carry tunnel bytes, within 2x of each other (the
// clients split over the initiator shards by the kernel's hash; 128 of them keep that even).
TEST_F(E2e, ManyClientsSpreadTunnelBytesOverBothTerminatorShards) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 2);
    ASSERT_TRUE(t.ready());
    ASSERT_TRUE(
        testlib::wait_until([&] { return t.terminator_metric("ferry_tunnel_up") == 2; }, 10000));
    EXPECT_EQ(verify(t.listen_port_, 128, "256KiB"), 0);
    const std::vector<int64_t> in = per_shard(t, "ferry_tunnel_bytes_in_total", 2);
    const std::vector<int64_t> streams = per_shard(t, "ferry_streams_opened_total", 2);
    ASSERT_EQ(in.size(), 2U);
    const int64_t lo = std::min(in[0], in[1]);
    const int64_t hi = std::max(in[0], in[1]);
    EXPECT_GT(lo, 0) << "tunnel bytes in per shard: " << text(in);
    EXPECT_LE(hi, 2 * lo) << "tunnel bytes in per shard: " << text(in)
                          << "; streams per shard: " << text(streams);
    EXPECT_EQ(streams[0] + streams[1], 128) << text(streams);
    // Both shards worked: each thread's CPU time shows on its own line.
    const std::vector<int64_t> cpu = per_shard(t, "ferry_shard_cpu_microseconds_total", 2);
    EXPECT_GT(cpu[0], 0);
    EXPECT_GT(cpu[1], 0);
}

// One node with one initiator shard and a terminator with two (a DaemonSet on small nodes): the
// terminator's HELLO says it has two shards, so the initiator opens a second connection, each
// lands on its own shard, and streams go to the connection with the fewest.
TEST_F(E2e, OneInitiatorShardOpensAConnectionForEachTerminatorShard) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {}, {}, /*terminator_shards=*/2);
    ASSERT_TRUE(t.ready());
    ASSERT_TRUE(
        testlib::wait_until([&] { return t.terminator_metric("ferry_tunnel_up") == 2; }, 10000));
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_up"), 2);
    const std::vector<int64_t> up = per_shard(t, "ferry_tunnel_up", 2);
    EXPECT_EQ(up, (std::vector<int64_t>{1, 1})) << "tunnel_up per shard: " << text(up);
    EXPECT_EQ(verify(t.listen_port_, 64, "256KiB"), 0);
    const std::vector<int64_t> in = per_shard(t, "ferry_tunnel_bytes_in_total", 2);
    const std::vector<int64_t> streams = per_shard(t, "ferry_streams_opened_total", 2);
    EXPECT_GT(std::min(in[0], in[1]), 0) << "tunnel bytes in per shard: " << text(in);
    EXPECT_LE(std::max(in[0], in[1]), 2 * std::min(in[0], in[1]))
        << "tunnel bytes in per shard: " << text(in) << "; streams: " << text(streams);
}

// Every armored tunnel connection is accepted on one shard and served on another: the TLS
// handshake, HELLO and every stream run on the adopting shard, and the bytes arrive exact.
TEST_F(E2e, ArmoredConnectionsHandedBetweenShardsCarryEveryByteExactly) {
    std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 2, {}, pki, 2, {"--tunnel-placement", "rotate"});
    ASSERT_TRUE(t.ready());
    ASSERT_TRUE(
        testlib::wait_until([&] { return t.terminator_metric("ferry_tunnel_up") == 2; }, 10000));
    EXPECT_EQ(verify(t.listen_port_, 64, "2MiB"), 0);
    const int64_t connects = t.terminator_metric("ferry_tunnel_connects_total");
    EXPECT_GE(connects, 2);
    EXPECT_EQ(t.terminator_metric("ferry_tunnel_handoffs_out_total"), connects);
    EXPECT_EQ(t.terminator_metric("ferry_tunnel_handoffs_in_total"), connects);
    EXPECT_EQ(t.terminator_metric("ferry_tunnel_disconnects_total"), 0);
    EXPECT_EQ(t.terminator_metric("ferry_tunnel_protocol_errors_total"), 0);
}

}  // namespace
}  // namespace ferry::e2e
