#include "ferry/config/options.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace ferry::config {
namespace {

const std::vector<int> kAllowed = {0, 1, 2, 3};

RawOptions initiator() {
    RawOptions raw;
    raw.role = "initiator";
    raw.tunnel_transport = "plain";
    raw.cpus = "none";
    raw.listen = {"127.0.0.1:7000"};
    raw.peer = {"127.0.0.1:7443"};
    raw.node_name = "init-0";
    return raw;
}

RawOptions terminator() {
    RawOptions raw;
    raw.role = "terminator";
    raw.tunnel_transport = "plain";
    raw.cpus = "none";
    raw.listen_tunnel = "[::1]:7443";
    raw.upstream = {"127.0.0.1:8080"};
    raw.admin = "127.0.0.1:9090";
    raw.node_name = "term-0";
    return raw;
}

// The error is InvalidArgument and its message starts with the flag, as "--flag: why".
void expect_flag_error(const absl::StatusOr<Options>& o, const std::string& flag) {
    ASSERT_FALSE(o.ok()) << "accepted a bad --" << flag;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << o.status();
    EXPECT_EQ(o.status().message().rfind("--" + flag + ":", 0), 0U)
        << "message does not name --" << flag << ": " << o.status().message();
}

TEST(ConfigValidate, AcceptsAGoodInitiator) {
    absl::StatusOr<Options> o = validate(initiator(), kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->role, Role::Initiator);
    ASSERT_EQ(o->listen.size(), 1U);
    EXPECT_EQ(o->listen[0].address.port(), 7000);
    EXPECT_EQ(o->listen[0].scheme, role::Scheme::Tcp);
    ASSERT_EQ(o->peers.size(), 1U);
    EXPECT_EQ(o->peers[0].port(), 7443);
    EXPECT_EQ(o->peers[0].family(), AF_INET);
    EXPECT_FALSE(o->has_admin);
    EXPECT_EQ(o->node_name, "init-0");
    EXPECT_EQ(o->max_connections, 65536U);
}

TEST(ConfigValidate, AcceptsAGoodTerminator) {
    absl::StatusOr<Options> o = validate(terminator(), kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->role, Role::Terminator);
    EXPECT_EQ(o->listen_tunnel.family(), AF_INET6);
    EXPECT_EQ(o->listen_tunnel.port(), 7443);
    ASSERT_EQ(o->upstreams.size(), 1U);
    EXPECT_EQ(o->upstreams[0].address.port(), 8080);
    EXPECT_TRUE(o->has_admin);
    EXPECT_EQ(o->admin.port(), 9090);
}

TEST(ConfigValidate, CarriesTheTuningIntoTheShardOptions) {
    RawOptions raw = initiator();
    raw.ring_entries = 1024;
    raw.sqpoll = true;
    raw.buffer_size = 32768;
    raw.buffer_count = 4096;
    raw.max_frame_size = 65536;
    raw.stream_window = 1 << 20;
    raw.connection_window = 64 << 20;
    raw.max_streams = 100;
    raw.connect_timeout = absl::Milliseconds(1500);
    raw.drain_timeout = absl::Seconds(3);
    raw.ping_interval = absl::Seconds(2);
    raw.ping_timeout = absl::Seconds(7);
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    const shard::ShardOptions& so = o->runtime.shard;
    EXPECT_EQ(so.ring.entries, 1024U);
    EXPECT_TRUE(so.ring.sqpoll);
    EXPECT_EQ(so.buffer_size, 32768U);
    EXPECT_EQ(so.buffer_count, 4096U);
    EXPECT_EQ(so.buffer_ring_entries, 2048U) << "half the pool goes to the buffer ring";
    EXPECT_EQ(o->tuning.max_frame_size, 65536U);
    EXPECT_EQ(o->tuning.stream_window, 1U << 20);
    EXPECT_EQ(o->tuning.connection_window, 64U << 20);
    EXPECT_EQ(o->tuning.max_streams, 100U);
    EXPECT_EQ(so.socket.connect_timeout_ns, 1'500'000'000U);
    EXPECT_EQ(o->tuning.ping_interval_ns, 2'000'000'000U);
    EXPECT_EQ(o->tuning.ping_timeout_ns, 7'000'000'000U);
    EXPECT_EQ(o->runtime.drain_timeout_ns, 3'000'000'000U);
}

TEST(ConfigValidate, BufferRingTakesTheLargestPowerOfTwoWithinHalfThePool) {
    RawOptions raw = initiator();
    raw.buffer_count = 3000;  // half is 1500 -> 1024
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->runtime.shard.buffer_ring_entries, 1024U);
    raw.buffer_count = 64;
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->runtime.shard.buffer_ring_entries, 32U);
}

TEST(ConfigValidate, ZeroZerocopyThresholdMeansNever) {
    RawOptions raw = initiator();
    raw.zerocopy_threshold = 0;
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->runtime.shard.socket.zerocopy_threshold, UINT32_MAX);
}

TEST(ConfigValidate, AnEmptyNodeNameFallsBackToTheDefault) {
    RawOptions raw = initiator();
    raw.node_name.clear();
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->node_name, default_node_name());
    EXPECT_FALSE(o->node_name.empty());
}

TEST(ConfigValidate, ReadsPlacementTriggersAndWebSocketTimers) {
    RawOptions raw = initiator();
    raw.shards = 3;
    raw.tunnels_per_peer = "4";
    raw.ws_ping_interval = absl::Seconds(20);
    raw.ws_allowed_origins = " https://a.example ,https://b.example,";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->tuning.shards, 3U) << "HELLO says how many shards serve the tunnels";
    EXPECT_EQ(o->tunnels_per_peer, 4U);
    EXPECT_EQ(o->tunnel_placement, role::TunnelPlacementPolicy::Balanced);
    EXPECT_EQ(o->auto_trigger, 5U);
    EXPECT_EQ(o->trigger_protocol, proto::tunnel::StreamProtocol::WebSocket);
    EXPECT_EQ(o->ws_ping_interval_ns, 20'000'000'000ULL);
    EXPECT_EQ(o->ws_idle_timeout_ns, 0U);
    EXPECT_EQ(o->ws_allowed_origins,
              (std::vector<std::string>{"https://a.example", "https://b.example"}));
    raw.tunnels_per_peer = "auto";
    raw.tunnel_placement = "rotate";
    raw.blueprint = "grpc";
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->trigger_protocol, proto::tunnel::StreamProtocol::Grpc);
    EXPECT_EQ(o->tunnels_per_peer, 0U);
    EXPECT_EQ(o->tunnel_placement, role::TunnelPlacementPolicy::Rotate);
}

TEST(ConfigValidate, RejectsBadPlacementTriggerAndWebSocketTimerValues) {
    for (const char* bad : {"0", "65", "x", ""}) {
        RawOptions raw = initiator();
        raw.tunnels_per_peer = bad;
        expect_flag_error(validate(raw, kAllowed), "tunnels-per-peer");
    }
    RawOptions raw = initiator();
    raw.tunnel_placement = "random";
    expect_flag_error(validate(raw, kAllowed), "tunnel-placement");
    raw = initiator();
    raw.auto_trigger = 10001;
    expect_flag_error(validate(raw, kAllowed), "auto-trigger");
    raw = initiator();
    raw.blueprint = "http";
    expect_flag_error(validate(raw, kAllowed), "blueprint");
    raw = initiator();
    raw.trigger_timeout = absl::ZeroDuration();
    expect_flag_error(validate(raw, kAllowed), "trigger-timeout");
    raw = initiator();
    raw.ws_ping_interval = absl::Seconds(-1);
    expect_flag_error(validate(raw, kAllowed), "ws-ping-interval");
    raw = initiator();
    raw.ws_idle_timeout = absl::Milliseconds(-5);
    expect_flag_error(validate(raw, kAllowed), "ws-idle-timeout");
}

TEST(ConfigValidate, RejectsShardsOutOfRange) {
    for (int shards : {-1, 1025, 100000}) {
        RawOptions raw = initiator();
        raw.shards = shards;
        expect_flag_error(validate(raw, kAllowed), "shards");
    }
    RawOptions raw = initiator();
    raw.shards = 1024;
    EXPECT_TRUE(validate(raw, kAllowed).ok());
}

TEST(ConfigValidate, RejectsRingEntriesThatAreNotAPowerOfTwoInRange) {
    for (uint32_t entries : {0U, 1000U, 4095U, 32U, 65536U}) {
        RawOptions raw = initiator();
        raw.ring_entries = entries;
        expect_flag_error(validate(raw, kAllowed), "ring-entries");
    }
    for (uint32_t entries : {64U, 4096U, 16384U}) {
        RawOptions raw = initiator();
        raw.ring_entries = entries;
        EXPECT_TRUE(validate(raw, kAllowed).ok()) << entries;
    }
}

TEST(ConfigValidate, RejectsATooSmallOrTooLargeBufferSize) {
    for (uint32_t size : {0U, 1024U, 4095U, (1U << 20) + 1}) {
        RawOptions raw = initiator();
        raw.buffer_size = size;
        expect_flag_error(validate(raw, kAllowed), "buffer-size");
    }
}

TEST(ConfigValidate, RejectsABufferCountOutOfRange) {
    for (uint32_t count : {0U, 63U, 65537U}) {
        RawOptions raw = initiator();
        raw.buffer_count = count;
        expect_flag_error(validate(raw, kAllowed), "buffer-count");
    }
}

TEST(ConfigValidate, RejectsAConnectionWindowBelowTheStreamWindow) {
    RawOptions raw = initiator();
    raw.stream_window = 1 << 20;
    raw.connection_window = (1 << 20) - 1;
    expect_flag_error(validate(raw, kAllowed), "connection-window");
    raw.connection_window = 1 << 20;
    EXPECT_TRUE(validate(raw, kAllowed).ok());
    raw.connection_window = 0x8000'0000U;
    expect_flag_error(validate(raw, kAllowed), "connection-window");
}

TEST(ConfigValidate, RejectsAStreamWindowOutOfRange) {
    RawOptions raw = initiator();
    raw.stream_window = 1023;
    expect_flag_error(validate(raw, kAllowed), "stream-window");
}

TEST(ConfigValidate, RejectsMaxStreamsOutOfRange) {
    RawOptions raw = initiator();
    raw.max_streams = 0;
    expect_flag_error(validate(raw, kAllowed), "max-streams");
}

TEST(ConfigValidate, RejectsAMaxFrameSizeBelowTheProtocolFloor) {
    for (uint32_t size : {1024U, 4096U, 16383U}) {
        RawOptions raw = initiator();
        raw.max_frame_size = size;
        expect_flag_error(validate(raw, kAllowed), "max-frame-size");
    }
}

TEST(ConfigValidate, RejectsAMaxFrameSizeOutOfRange) {
    for (uint32_t size : {0U, 1023U, (16U << 20) + 1}) {
        RawOptions raw = initiator();
        raw.max_frame_size = size;
        expect_flag_error(validate(raw, kAllowed), "max-frame-size");
    }
}

TEST(ConfigValidate, RequiresThePeerOfAnInitiator) {
    RawOptions raw = initiator();
    raw.peer.clear();
    expect_flag_error(validate(raw, kAllowed), "peer");
}

TEST(ConfigValidate, RequiresTheAddressesOfEachRole) {
    RawOptions raw = initiator();
    raw.listen.clear();
    expect_flag_error(validate(raw, kAllowed), "listen");
    raw = terminator();
    raw.listen_tunnel.clear();
    expect_flag_error(validate(raw, kAllowed), "listen-tunnel");
    raw = terminator();
    raw.upstream.clear();
    expect_flag_error(validate(raw, kAllowed), "upstream");
}

TEST(ConfigValidate, RejectsUnparsableAddresses) {
    RawOptions raw = initiator();
    raw.peer = {"127.0.0.1"};
    expect_flag_error(validate(raw, kAllowed), "peer");
    raw = initiator();
    raw.listen = {"127.0.0.1:99999"};
    expect_flag_error(validate(raw, kAllowed), "listen");
    raw = terminator();
    raw.admin = "[::1:80";
    expect_flag_error(validate(raw, kAllowed), "admin");
    raw = terminator();
    raw.upstream = {"300.0.0.1:80"};
    expect_flag_error(validate(raw, kAllowed), "upstream");
}

// ---- listener and upstream URLs -----------------------------------------------------------------

TEST(ServiceUrl, TakesAHostPortAsTcp) {
    absl::StatusOr<role::ServiceUrl> u = parse_service_url("listen", "127.0.0.1:9000");
    ASSERT_TRUE(u.ok()) << u.status();
    EXPECT_EQ(u->scheme, role::Scheme::Tcp);
    EXPECT_EQ(u->protocol(), proto::tunnel::StreamProtocol::Tcp);
    EXPECT_FALSE(u->tls());
    EXPECT_EQ(u->host, "127.0.0.1");
    EXPECT_EQ(u->port, 9000);
    EXPECT_EQ(u->address.port(), 9000);
    EXPECT_TRUE(u->path.empty());
    EXPECT_EQ(u->text, "127.0.0.1:9000");
}

TEST(ServiceUrl, ReadsEverySchemeAndItsProtocol) {
    struct Case {
        const char* text;
        role::Scheme scheme;
        proto::tunnel::StreamProtocol protocol;
        bool tls;
        uint16_t port;
        const char* path;
    };
    const Case cases[] = {
        {"tcp://127.0.0.1:7000", role::Scheme::Tcp, proto::tunnel::StreamProtocol::Tcp, false, 7000,
         ""},
        {"ws://127.0.0.1:8080/chat?room=1", role::Scheme::Ws,
         proto::tunnel::StreamProtocol::WebSocket, false, 8080, "/chat?room=1"},
        {"ws://127.0.0.1", role::Scheme::Ws, proto::tunnel::StreamProtocol::WebSocket, false, 80,
         "/"},
        {"wss://[::1]/x", role::Scheme::Wss, proto::tunnel::StreamProtocol::WebSocket, true, 443,
         "/x"},
        {"ws://127.0.0.1:81?q", role::Scheme::Ws, proto::tunnel::StreamProtocol::WebSocket, false,
         81, "/?q"},
        {"grpc://127.0.0.1:50051", role::Scheme::Grpc, proto::tunnel::StreamProtocol::Grpc, false,
         50051, ""},
        {"grpcs://[::1]:443/", role::Scheme::Grpcs, proto::tunnel::StreamProtocol::Grpc, true, 443,
         ""},
    };
    for (const Case& c : cases) {
        absl::StatusOr<role::ServiceUrl> u = parse_service_url("upstream", c.text);
        ASSERT_TRUE(u.ok()) << c.text << ": " << u.status();
        EXPECT_EQ(u->scheme, c.scheme) << c.text;
        EXPECT_EQ(u->protocol(), c.protocol) << c.text;
        EXPECT_EQ(u->tls(), c.tls) << c.text;
        EXPECT_EQ(u->port, c.port) << c.text;
        EXPECT_EQ(u->path, c.path) << c.text;
    }
}

TEST(ServiceUrl, RejectsWhatItCannotServe) {
    for (const char* bad :
         {"http://127.0.0.1:80", "127.0.0.1", "tcp://127.0.0.1", "grpc://127.0.0.1",
          "tcp://127.0.0.1:80/path", "tcp://", "ws://[::1:80/", "tcp://127.0.0.1:65536"}) {
        absl::StatusOr<role::ServiceUrl> u = parse_service_url("listen", bad);
        ASSERT_FALSE(u.ok()) << "accepted " << bad;
        EXPECT_EQ(u.status().message().rfind("--listen: '", 0), 0U) << u.status().message();
    }
}

TEST(ConfigValidate, TakesSeveralListenersAndPeers) {
    RawOptions raw = initiator();
    raw.listen = {"127.0.0.1:7000", "tcp://127.0.0.1:7001"};
    raw.peer = {"127.0.0.1:7443", "[::1]:7443"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    ASSERT_EQ(o->listen.size(), 2U);
    EXPECT_EQ(o->listen[1].address.port(), 7001);
    ASSERT_EQ(o->peers.size(), 2U);
    EXPECT_EQ(o->peers[1].family(), AF_INET6);
}

TEST(ConfigValidate, RejectsAPeerGivenTwice) {
    RawOptions raw = initiator();
    raw.peer = {"127.0.0.1:7443", "127.0.0.2:7443", "127.0.0.1:7443"};
    expect_flag_error(validate(raw, kAllowed), "peer");
}

TEST(ConfigValidate, RouteKeyDefaultsToTheXRoutingKeyHeader) {
    absl::StatusOr<Options> o = validate(initiator(), kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->route_key.source, role::RouteKeySource::Header);
    EXPECT_EQ(o->route_key.name, "X-Routing-Key");
}

TEST(ConfigValidate, TakesEachRouteKeyForm) {
    RawOptions raw = initiator();
    raw.route_key = "query:room";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->route_key.source, role::RouteKeySource::Query);
    EXPECT_EQ(o->route_key.name, "room");
    raw.route_key = "client-address";
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->route_key.source, role::RouteKeySource::ClientAddress);
    raw.route_key = "header:X-Tenant";
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(role::route_key_text(o->route_key), "header:X-Tenant");
}

TEST(ConfigValidate, RejectsAMalformedRouteKey) {
    for (const char* bad : {"", "header", "header:", "cookie:x", "query", "client"}) {
        RawOptions raw = initiator();
        raw.route_key = bad;
        expect_flag_error(validate(raw, kAllowed), "route-key");
    }
}

TEST(ConfigValidate, RejectsTwoListenersOnOneAddress) {
    RawOptions raw = initiator();
    raw.listen = {"127.0.0.1:7000", "tcp://127.0.0.1:7000"};
    expect_flag_error(validate(raw, kAllowed), "listen");
}

TEST(ConfigValidate, TakesSeveralTcpUpstreamsOnDistinctAddresses) {
    RawOptions raw = terminator();
    raw.upstream = {"127.0.0.1:8080", "tcp://127.0.0.1:8081", "127.0.0.2:8080"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->upstreams.size(), 3U);
    raw.upstream = {"127.0.0.1:8080", "tcp://127.0.0.1:8080"};
    expect_flag_error(validate(raw, kAllowed), "upstream");
}

TEST(ConfigValidate, RejectsTwoWebSocketUpstreamsOnOneAddress) {
    RawOptions raw = terminator();
    raw.upstream = {"ws://127.0.0.1:8080", "ws://127.0.0.1:8080/other"};
    expect_flag_error(validate(raw, kAllowed), "upstream");
}

TEST(ConfigValidate, AcceptsWebSocketListenersAtTheInitiator) {
    RawOptions raw = initiator();
    raw.listen = {"ws://127.0.0.1:8080/chat", "127.0.0.1:7000"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status().message();
    ASSERT_EQ(o->listen.size(), 2U);
    EXPECT_EQ(o->listen[0].scheme, role::Scheme::Ws);
    EXPECT_EQ(o->listen[0].path, "/chat");
    EXPECT_EQ(o->ws_max_message, uint64_t{16} << 20);
}

TEST(ConfigValidate, RejectsWssUpstreamsUntilTheyAreServed) {
    {
        RawOptions raw = initiator();
        raw.listen = {"grpc://127.0.0.1:50051"};  // h2c listeners are served
        EXPECT_TRUE(validate(raw, kAllowed).ok());
    }
    {
        RawOptions raw = terminator();
        raw.upstream = {"127.0.0.1:8080", "grpc://127.0.0.1:50051"};  // and h2c upstreams
        absl::StatusOr<Options> o = validate(raw, kAllowed);
        ASSERT_TRUE(o.ok()) << o.status().message();
        EXPECT_EQ(o->upstreams[1].protocol(), proto::tunnel::StreamProtocol::Grpc);
        EXPECT_FALSE(o->upstream_tls.has_value());
        raw.upstream.push_back("grpc://127.0.0.1:50051");
        expect_flag_error(validate(raw, kAllowed), "upstream");  // the same pod twice
    }
    RawOptions raw = terminator();
    raw.upstream = {"127.0.0.1:8080", "wss://127.0.0.1:8443/"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    expect_flag_error(o, "upstream");
    EXPECT_NE(o.status().message().find("not served by this build"), std::string::npos)
        << o.status().message();
}

TEST(ConfigValidate, AGrpcsUpstreamIsATlsClientOfItsHost) {
    RawOptions raw = terminator();
    raw.upstream = {"127.0.0.1:8080", "grpcs://localhost:50052"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status().message();
    ASSERT_TRUE(o->upstream_tls.has_value());
    EXPECT_FALSE(o->upstream_tls->is_server);
    EXPECT_TRUE(o->upstream_tls->foreign_server);
    EXPECT_EQ(o->upstream_tls->peer_name, "localhost");  // SNI and the certificate check
    EXPECT_EQ(o->upstream_tls->alpn, "h2");
    EXPECT_EQ(o->upstream_tls->ca_file, "") << "the system's trust store";
    raw.upstream_tls_ca = "/no/such/ca.pem";
    expect_flag_error(validate(raw, kAllowed), "upstream-tls-ca");
    raw.upstream = {"grpc://127.0.0.1:50051"};  // a CA but no grpcs:// upstream
    expect_flag_error(validate(raw, kAllowed), "upstream-tls-ca");
}

TEST(ConfigValidate, AcceptsOneWebSocketUpstreamBesideTheTcpOne) {
    RawOptions raw = terminator();
    raw.upstream = {"127.0.0.1:8080", "ws://127.0.0.1:8081/chat?room=1"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status().message();
    ASSERT_EQ(o->upstreams.size(), 2U);
    EXPECT_EQ(o->upstreams[1].scheme, role::Scheme::Ws);
    EXPECT_EQ(o->upstreams[1].protocol(), proto::tunnel::StreamProtocol::WebSocket);
    EXPECT_EQ(o->upstreams[1].host, "127.0.0.1");
    EXPECT_EQ(o->upstreams[1].port, 8081);
    EXPECT_EQ(o->upstreams[1].path, "/chat?room=1");

    raw.upstream = {"ws://127.0.0.1:8081/", "ws://127.0.0.1:8081/b"};
    o = validate(raw, kAllowed);
    expect_flag_error(o, "upstream");
    EXPECT_NE(o.status().message().find("are the same address"), std::string::npos)
        << o.status().message();
}

TEST(ConfigValidate, RejectsAWssUpstreamWithAOneLineReason) {
    RawOptions raw = terminator();
    raw.upstream = {"wss://127.0.0.1:8443/"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    expect_flag_error(o, "upstream");
    EXPECT_NE(o.status().message().find("wss:// upstream is not served"), std::string::npos)
        << o.status().message();
    EXPECT_EQ(o.status().message().find('\n'), std::string::npos) << o.status().message();
}

TEST(ConfigValidate, ChecksTheWebSocketMessageLimit) {
    RawOptions raw = initiator();
    raw.ws_max_message = 0;
    expect_flag_error(validate(raw, kAllowed), "ws-max-message");
    raw.ws_max_message = (uint64_t{1} << 30) + 1;
    expect_flag_error(validate(raw, kAllowed), "ws-max-message");
    raw.ws_max_message = 1 << 20;
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status().message();
    EXPECT_EQ(o->ws_max_message, uint64_t{1} << 20);
}

TEST(ConfigValidate, RejectsAnUnknownRole) {
    for (const char* role : {"", "relay", "Initiator", "initiator "}) {
        RawOptions raw = initiator();
        raw.role = role;
        absl::StatusOr<Options> o = validate(raw, kAllowed);
        ASSERT_FALSE(o.ok()) << "'" << role << "'";
        EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_NE(o.status().message().find("role"), std::string_view::npos);
    }
}

TEST(ConfigValidate, RejectsZeroOrNegativeDurations) {
    struct Case {
        absl::Duration RawOptions::*field;
        const char* flag;
    };
    const Case cases[] = {
        {&RawOptions::connect_timeout, "connect-timeout"},
        {&RawOptions::drain_timeout, "drain-timeout"},
        {&RawOptions::ping_interval, "ping-interval"},
        {&RawOptions::ping_timeout, "ping-timeout"},
    };
    for (const Case& c : cases) {
        for (absl::Duration d : {absl::ZeroDuration(), absl::Seconds(-1)}) {
            RawOptions raw = initiator();
            raw.*c.field = d;
            expect_flag_error(validate(raw, kAllowed), c.flag);
        }
    }
}

TEST(ConfigValidate, RejectsAnUnknownLogLevelOrTransport) {
    RawOptions raw = initiator();
    raw.log_level = "verbose";
    expect_flag_error(validate(raw, kAllowed), "log-level");
    raw = initiator();
    raw.tunnel_transport = "quic";
    expect_flag_error(validate(raw, kAllowed), "tunnel-transport");
    raw = initiator();
    raw.log_format = "logfmt";
    expect_flag_error(validate(raw, kAllowed), "log-format");
    raw.log_format = "json";
    absl::StatusOr<Options> json = validate(raw, kAllowed);
    ASSERT_TRUE(json.ok()) << json.status();
    EXPECT_EQ(json->log_format, base::LogFormat::Json);
}

TEST(ConfigValidate, RejectsAnOverlongNodeName) {
    RawOptions raw = initiator();
    raw.node_name = std::string(256, 'n');
    expect_flag_error(validate(raw, kAllowed), "node-name");
    raw.node_name = std::string(255, 'n');
    EXPECT_TRUE(validate(raw, kAllowed).ok());
}

TEST(ConfigValidate, RejectsABadCpuList) {
    for (const char* cpus : {"0,a", "x", "3-1", "-1", "0,,1", ",", "1;2"}) {
        RawOptions raw = initiator();
        raw.cpus = cpus;
        expect_flag_error(validate(raw, kAllowed), "cpus");
    }
}

TEST(ConfigValidate, RejectsACpuOutsideTheAffinityMask) {
    RawOptions raw = initiator();
    raw.cpus = "2,7";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    expect_flag_error(o, "cpus");
    EXPECT_NE(o.status().message().find("CPU 7"), std::string_view::npos);
}

TEST(ConfigValidate, RejectsADuplicateCpu) {
    for (const char* cpus : {"1,1", "0-2,2", "1,0-3"}) {
        RawOptions raw = initiator();
        raw.cpus = cpus;
        absl::StatusOr<Options> o = validate(raw, kAllowed);
        expect_flag_error(o, "cpus");
        EXPECT_NE(o.status().message().find("twice"), std::string_view::npos) << cpus;
    }
}

TEST(ConfigValidate, CpusNoneMeansNoPinning) {
    RawOptions raw = initiator();
    raw.cpus = "none";
    raw.shards = 3;
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_TRUE(o->runtime.cpus.empty());
    EXPECT_EQ(o->runtime.shards, 3);
}

TEST(ConfigValidate, ZeroShardsTakesOnePerAllowedCpu) {
    RawOptions raw = initiator();
    raw.shards = 0;
    raw.cpus = "auto";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->runtime.shards, 4);
    EXPECT_EQ(o->runtime.cpus, kAllowed);

    raw.cpus = "none";
    o = validate(raw, {0, 5});
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->runtime.shards, 2);
    EXPECT_TRUE(o->runtime.cpus.empty());

    raw.cpus = "";  // same as auto
    o = validate(raw, {1, 3, 5});
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->runtime.shards, 3);
}

TEST(ConfigValidate, ZeroShardsWithACpuListTakesOnePerListedCpu) {
    RawOptions raw = initiator();
    raw.shards = 0;
    raw.cpus = "1-3";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->runtime.shards, 3);
    EXPECT_EQ(o->runtime.cpus, (std::vector<int>{1, 2, 3}));
}

TEST(ConfigValidate, AnExplicitShardCountKeepsTheCpuList) {
    RawOptions raw = initiator();
    raw.shards = 8;
    raw.cpus = "0,2";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->runtime.shards, 8);
    EXPECT_EQ(o->runtime.cpus, (std::vector<int>{0, 2}));
}

// Readable (empty) certificate, key and CA files: validate() checks they can be read; loading
// them is the TLS context's job.
class TlsFiles {
  public:
    TlsFiles() {
        for (const std::string* path : {&cert, &key, &ca}) {
            std::FILE* f = std::fopen(path->c_str(), "w");
            if (f != nullptr) {
                std::fclose(f);
            }
        }
    }
    ~TlsFiles() {
        for (const std::string* path : {&cert, &key, &ca}) {
            unlink(path->c_str());
        }
        rmdir(dir.c_str());
    }
    TlsFiles(const TlsFiles&) = delete;
    TlsFiles& operator=(const TlsFiles&) = delete;

    const std::string dir = make_dir();
    const std::string cert = dir + "/cert.pem";
    const std::string key = dir + "/key.pem";
    const std::string ca = dir + "/ca.pem";

  private:
    static std::string make_dir() {
        std::string tmpl = ::testing::TempDir() + "ferry-config-XXXXXX";
        return mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string("/nonexistent");
    }
};

RawOptions with_tls(RawOptions raw, const TlsFiles& files) {
    raw.tunnel_transport = "tls";
    raw.tls_cert = files.cert;
    raw.tls_key = files.key;
    raw.tls_ca = files.ca;
    return raw;
}

TEST(ConfigValidate, WssListenersNeedTheirOwnCertificate) {
    TlsFiles files;
    RawOptions raw = initiator();
    raw.listen = {"wss://127.0.0.1:8443/chat", "ws://127.0.0.1:8080/"};
    expect_flag_error(validate(raw, kAllowed), "listen-tls-cert");
    raw.listen_tls_cert = files.cert;
    expect_flag_error(validate(raw, kAllowed), "listen-tls-key");
    raw.listen_tls_key = files.dir + "/missing.pem";
    expect_flag_error(validate(raw, kAllowed), "listen-tls-key");
    raw.listen_tls_key = files.key;
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->listen[0].scheme, role::Scheme::Wss);
    EXPECT_EQ(o->listen[0].port, 8443);
    ASSERT_TRUE(o->listener_tls.has_value());
    EXPECT_TRUE(o->listener_tls->is_server);
    EXPECT_FALSE(o->listener_tls->verify_peer);  // web clients carry no certificate
    EXPECT_EQ(o->listener_tls->alpn, "http/1.1");
    EXPECT_EQ(o->listener_tls->cert_file, files.cert);
    // A certificate with nothing to serve it is a mistake worth naming.
    raw.listen = {"ws://127.0.0.1:8080/"};
    expect_flag_error(validate(raw, kAllowed), "listen-tls-cert");
    raw.listen_tls_cert.clear();
    raw.listen_tls_key.clear();
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_FALSE(o->listener_tls.has_value());
    // grpcs:// listeners take the same certificate.
    raw.listen = {"grpcs://127.0.0.1:8443"};
    expect_flag_error(validate(raw, kAllowed), "listen-tls-cert");
    raw.listen_tls_cert = files.cert;
    raw.listen_tls_key = files.key;
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->listen[0].protocol(), proto::tunnel::StreamProtocol::Grpc);
    EXPECT_TRUE(o->listen[0].tls());
    EXPECT_TRUE(o->listener_tls.has_value());
}

bool no_ktls() { return false; }
bool has_ktls() { return true; }

TEST(ConfigValidate, TlsIsTheDefaultTransport) {
    EXPECT_EQ(RawOptions{}.tunnel_transport, "tls");
    RawOptions raw = initiator();
    raw.tunnel_transport = RawOptions{}.tunnel_transport;
    expect_flag_error(validate(raw, kAllowed), "tls-cert");
}

TEST(ConfigValidate, PlainTransportTurnsTlsOff) {
    absl::StatusOr<Options> o = validate(initiator(), kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_FALSE(o->security.tls);
}

TEST(ConfigValidate, UnknownTransportNamesTheValidOnes) {
    RawOptions raw = initiator();
    raw.tunnel_transport = "quic";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_FALSE(o.ok());
    EXPECT_NE(o.status().message().find("expected tls (default), ws, grpc or plain"),
              std::string::npos)
        << o.status();
}

TEST(ConfigValidate, WsTransportIsMutualTlsInsideAWebSocket) {
    TlsFiles files;
    RawOptions raw = initiator();
    raw.tunnel_transport = "ws";
    // The same certificates as tls: mutual TLS runs inside the WebSocket.
    expect_flag_error(validate(raw, kAllowed), "tls-cert");
    raw = with_tls(initiator(), files);
    raw.tunnel_transport = "ws";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_TRUE(o->security.tls);
    EXPECT_TRUE(o->security.ws);
    EXPECT_FALSE(o->security.ws_options.is_server);
    EXPECT_EQ(o->security.ws_options.path, "/ferry/tunnel");
    EXPECT_EQ(o->security.ws_options.host, raw.peer_name);

    raw = with_tls(terminator(), files);
    raw.tunnel_transport = "ws";
    raw.tunnel_ws_path = "/edge/ferry";
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_TRUE(o->security.ws);
    EXPECT_TRUE(o->security.ws_options.is_server);
    EXPECT_EQ(o->security.ws_options.path, "/edge/ferry");

    // tls leaves the WebSocket out.
    raw.tunnel_transport = "tls";
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_FALSE(o->security.ws);
}

TEST(ConfigValidate, WsPathMustBeAnAbsolutePath) {
    TlsFiles files;
    for (const char* bad : {"", "ferry/tunnel", "/a b", "/q?x=1", "/a\r\nX: y"}) {
        SCOPED_TRACE(bad);
        RawOptions raw = with_tls(terminator(), files);
        raw.tunnel_transport = "ws";
        raw.tunnel_ws_path = bad;
        expect_flag_error(validate(raw, kAllowed), "tunnel-ws-path");
    }
}

TEST(ConfigValidate, GrpcTransportIsMutualTlsInsideAGrpcCall) {
    TlsFiles files;
    RawOptions raw = initiator();
    raw.tunnel_transport = "grpc";
    expect_flag_error(validate(raw, kAllowed), "tls-cert");
    raw = with_tls(initiator(), files);
    raw.tunnel_transport = "grpc";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_TRUE(o->security.tls);
    EXPECT_TRUE(o->security.grpc);
    EXPECT_FALSE(o->security.ws);
    EXPECT_FALSE(o->security.grpc_options.is_server);
    EXPECT_EQ(o->security.grpc_options.path, "/ferry.tunnel.v1.Tunnel/Carry");
    EXPECT_EQ(o->security.grpc_options.authority, raw.peer_name);

    raw = with_tls(terminator(), files);
    raw.tunnel_transport = "grpc";
    raw.tunnel_grpc_path = "/edge.Ferry/Tunnel";
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_TRUE(o->security.grpc_options.is_server);
    EXPECT_EQ(o->security.grpc_options.path, "/edge.Ferry/Tunnel");

    for (const char* bad : {"", "/", "ferry.Tunnel/Carry", "/a b", "/q?x=1", "/a\r\nX: y"}) {
        SCOPED_TRACE(bad);
        raw.tunnel_grpc_path = bad;
        expect_flag_error(validate(raw, kAllowed), "tunnel-grpc-path");
    }
}

TEST(ConfigValidate, AcceptsAGoodTlsTerminator) {
    TlsFiles files;
    RawOptions raw = with_tls(terminator(), files);
    raw.allowed_peers = "init-a,,init-b";
    raw.rekey_bytes = 1 << 20;
    raw.rekey_interval = absl::Seconds(30);
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    const role::TunnelSecurity& sec = o->security;
    EXPECT_TRUE(sec.tls);
    EXPECT_TRUE(sec.tls_config.is_server);
    EXPECT_EQ(sec.tls_config.cert_file, files.cert);
    EXPECT_EQ(sec.tls_config.key_file, files.key);
    EXPECT_EQ(sec.tls_config.ca_file, files.ca);
    EXPECT_EQ(sec.tls_config.allowed_peer_names, (std::vector<std::string>{"init-a", "init-b"}));
    EXPECT_EQ(sec.tls_options.ktls, transport::KtlsMode::Auto);
    EXPECT_EQ(sec.tls_options.rekey_bytes, 1U << 20);
    EXPECT_EQ(sec.tls_options.rekey_interval_ns, 30'000'000'000U);
}

TEST(ConfigValidate, AcceptsAGoodTlsInitiatorThatChecksThePeerName) {
    TlsFiles files;
    RawOptions raw = with_tls(initiator(), files);
    raw.peer_name = "terminator.example";
    raw.tls_ciphers = "TLS_AES_128_GCM_SHA256";
    raw.ktls = "off";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_FALSE(o->security.tls_config.is_server);
    EXPECT_EQ(o->security.tls_config.peer_name, "terminator.example");
    EXPECT_EQ(o->security.tls_config.ciphersuites, "TLS_AES_128_GCM_SHA256");
    EXPECT_EQ(o->security.tls_options.ktls, transport::KtlsMode::Off);
}

TEST(ConfigValidate, TlsRequiresCertificateKeyAndCa) {
    TlsFiles files;
    for (std::string RawOptions::*field :
         {&RawOptions::tls_cert, &RawOptions::tls_key, &RawOptions::tls_ca}) {
        RawOptions raw = with_tls(initiator(), files);
        (raw.*field).clear();
        const char* flag = field == &RawOptions::tls_cert  ? "tls-cert"
                           : field == &RawOptions::tls_key ? "tls-key"
                                                           : "tls-ca";
        expect_flag_error(validate(raw, kAllowed), flag);
    }
}

TEST(ConfigValidate, TlsRejectsAFileItCannotRead) {
    TlsFiles files;
    RawOptions raw = with_tls(initiator(), files);
    raw.tls_key = files.dir + "/missing.pem";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    expect_flag_error(o, "tls-key");
    EXPECT_NE(o.status().message().find("missing.pem"), std::string_view::npos);
}

TEST(ConfigValidate, ATlsInitiatorNeedsAPeerName) {
    TlsFiles files;
    RawOptions raw = with_tls(initiator(), files);
    raw.peer_name.clear();
    expect_flag_error(validate(raw, kAllowed), "peer-name");
}

TEST(ConfigValidate, RejectsAnUnknownKtlsMode) {
    TlsFiles files;
    RawOptions raw = with_tls(initiator(), files);
    raw.ktls = "maybe";
    expect_flag_error(validate(raw, kAllowed), "ktls");
}

TEST(ConfigValidate, KtlsOnNeedsAKernelThatOffersIt) {
    TlsFiles files;
    RawOptions raw = with_tls(initiator(), files);
    raw.ktls = "on";
    expect_flag_error(validate(raw, kAllowed, &no_ktls), "ktls");
    absl::StatusOr<Options> o = validate(raw, kAllowed, &has_ktls);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->security.tls_options.ktls, transport::KtlsMode::On);
}

TEST(ConfigValidate, RejectsANegativeRekeyInterval) {
    TlsFiles files;
    RawOptions raw = with_tls(initiator(), files);
    raw.rekey_interval = absl::Seconds(-1);
    expect_flag_error(validate(raw, kAllowed), "rekey-interval");
    raw.rekey_interval = absl::ZeroDuration();  // rotation by age off
    EXPECT_TRUE(validate(raw, kAllowed).ok());
}

TEST(ConfigValidate, TlsNeedsBuffersThatHoldARecord) {
    TlsFiles files;
    RawOptions raw = with_tls(initiator(), files);
    raw.buffer_size = 8192;
    expect_flag_error(validate(raw, kAllowed), "buffer-size");
    raw.tunnel_transport = "plain";
    EXPECT_TRUE(validate(raw, kAllowed).ok());
}

TEST(ConfigValidate, RejectsATunnelBufferCountOutOfRange) {
    for (uint32_t count : {0U, 63U, 65537U}) {
        RawOptions raw = initiator();
        raw.tunnel_buffer_count = count;
        expect_flag_error(validate(raw, kAllowed), "tunnel-buffer-count");
    }
    RawOptions raw = initiator();
    raw.tunnel_buffer_count = 512;
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->runtime.shard.tunnel_buffer_count, 512U);
    EXPECT_EQ(o->runtime.shard.tunnel_buffer_ring_entries, 256U);
}

TEST(ParseCpuList, ReadsSinglesAndRanges) {
    const std::vector<int> allowed = {0, 1, 2, 3, 4, 5, 6, 7};
    absl::StatusOr<std::vector<int>> cpus = parse_cpu_list("0,2-3", allowed);
    ASSERT_TRUE(cpus.ok()) << cpus.status();
    EXPECT_EQ(*cpus, (std::vector<int>{0, 2, 3}));
    cpus = parse_cpu_list("5", allowed);
    ASSERT_TRUE(cpus.ok());
    EXPECT_EQ(*cpus, std::vector<int>{5});
    cpus = parse_cpu_list("4-4", allowed);
    ASSERT_TRUE(cpus.ok());
    EXPECT_EQ(*cpus, std::vector<int>{4});
    cpus = parse_cpu_list("0-7", allowed);
    ASSERT_TRUE(cpus.ok());
    EXPECT_EQ(cpus->size(), 8U);
}

TEST(ParseCpuList, KeepsTheOrderGiven) {
    const std::vector<int> allowed = {0, 1, 2, 3, 4, 5, 6, 7};
    absl::StatusOr<std::vector<int>> cpus = parse_cpu_list("6-7,0,3-4", allowed);
    ASSERT_TRUE(cpus.ok()) << cpus.status();
    EXPECT_EQ(*cpus, (std::vector<int>{6, 7, 0, 3, 4}));
}

TEST(ParseCpuList, RejectsAnEmptyList) { EXPECT_FALSE(parse_cpu_list("", kAllowed).ok()); }

TEST(ParseCpuList, RejectsMalformedRanges) {
    for (const char* text : {"0-1-3", "2-", "1-2-"}) {
        EXPECT_FALSE(parse_cpu_list(text, kAllowed).ok()) << text;
    }
}

TEST(AffinityCpus, ListsAtLeastTheCpuThisThreadRunsOn) {
    std::vector<int> cpus = affinity_cpus();
    ASSERT_FALSE(cpus.empty());
    EXPECT_TRUE(std::is_sorted(cpus.begin(), cpus.end()));
}

TEST(ConfigValidate, PeerWeightsGoToTheirPeersAndTheRestWeighOne) {
    RawOptions raw = initiator();
    raw.peer = {"127.0.0.1:7443", "127.0.0.2:7443", "127.0.0.3:7443"};
    raw.peer_weights = {"127.0.0.3:7443=2.5", "127.0.0.1:7443=4"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->peer_weights, (std::vector<double>{4, 1, 2.5}));
    raw.peer_weights = {};
    o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->peer_weights, (std::vector<double>{1, 1, 1}));
}

TEST(ConfigValidate, RejectsWeightsThatAreNotPositiveOrNameNoPeer) {
    for (const char* bad :
         {"127.0.0.1:7443", "127.0.0.1:7443=0", "127.0.0.1:7443=-1", "127.0.0.1:7443=nan",
          "127.0.0.1:7443=inf", "127.0.0.1:7443=2e6", "127.0.0.9:7443=2", "nohost=2"}) {
        RawOptions raw = initiator();
        raw.peer_weights = {bad};
        expect_flag_error(validate(raw, kAllowed), "peer-weights");
    }
    RawOptions twice = initiator();
    twice.peer_weights = {"127.0.0.1:7443=2", "127.0.0.1:7443=3"};
    expect_flag_error(validate(twice, kAllowed), "peer-weights");
    RawOptions wrong_role = terminator();
    wrong_role.peer_weights = {"127.0.0.1:7443=2"};
    expect_flag_error(validate(wrong_role, kAllowed), "peer-weights");
    RawOptions init = initiator();
    init.upstream_weights = {"127.0.0.1:8080=2"};
    expect_flag_error(validate(init, kAllowed), "upstream-weights");
}

TEST(ConfigValidate, UpstreamWeightsGoToTheUpstreamsAtTheirAddress) {
    RawOptions raw = terminator();
    raw.upstream = {"127.0.0.1:8080", "ws://127.0.0.1:8081/", "tcp://127.0.0.1:8082",
                    "ws://127.0.0.1:8082/chat"};
    raw.upstream_weights = {"127.0.0.1:8082=3"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    ASSERT_EQ(o->upstreams.size(), 4U);
    EXPECT_EQ(o->upstreams[0].weight, 1.0);
    EXPECT_EQ(o->upstreams[1].weight, 1.0);
    EXPECT_EQ(o->upstreams[2].weight, 3.0);
    EXPECT_EQ(o->upstreams[3].weight, 3.0);
    raw.upstream_weights = {"127.0.0.1:9999=3"};
    expect_flag_error(validate(raw, kAllowed), "upstream-weights");
}

TEST(ConfigValidate, SeveralUpstreamsOfOneProtocolNeedDistinctAddresses) {
    RawOptions raw = terminator();
    raw.upstream = {"ws://127.0.0.1:8081/", "ws://127.0.0.2:8081/", "grpc://127.0.0.1:9000",
                    "grpc://127.0.0.2:9000"};
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->upstreams.size(), 4U);
    raw.upstream = {"ws://127.0.0.1:8081/a", "ws://127.0.0.1:8081/b"};
    expect_flag_error(validate(raw, kAllowed), "upstream");
}

TEST(ConfigValidate, PeerFailureThresholdIsBounded) {
    RawOptions raw = initiator();
    raw.peer_failure_threshold = -1;
    expect_flag_error(validate(raw, kAllowed), "peer-failure-threshold");
    raw.peer_failure_threshold = 1001;
    expect_flag_error(validate(raw, kAllowed), "peer-failure-threshold");
    raw.peer_failure_threshold = 0;
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->tuning.peer_failure_threshold, 0U);
}

TEST(ConfigValidate, PeerDnsNeedsNameAndPortAndStandsInForPeer) {
    RawOptions raw = initiator();
    raw.peer = {};
    raw.peer_dns = "ferry-terminator.ferry.svc.cluster.local:7443";
    raw.dns_server = "10.96.0.10:53";
    absl::StatusOr<Options> o = validate(raw, kAllowed);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_TRUE(o->has_peer_dns);
    EXPECT_EQ(o->peer_dns.name, "ferry-terminator.ferry.svc.cluster.local");
    EXPECT_EQ(o->peer_dns.port, 7443);
    EXPECT_EQ(o->peer_dns.servers, "10.96.0.10:53");
    EXPECT_TRUE(o->peers.empty());
    for (const char* bad : {"nameonly", ":7443", "svc:0", "svc:70000", "svc:x"}) {
        raw.peer_dns = bad;
        expect_flag_error(validate(raw, kAllowed), "peer-dns");
    }
    raw.peer_dns = "";
    expect_flag_error(validate(raw, kAllowed), "peer");
    RawOptions server_only = initiator();
    server_only.dns_server = "10.96.0.10";
    expect_flag_error(validate(server_only, kAllowed), "dns-server");
    RawOptions term = terminator();
    term.peer_dns = "svc:7443";
    expect_flag_error(validate(term, kAllowed), "peer-dns");
}

}  // namespace
}  // namespace ferry::config
