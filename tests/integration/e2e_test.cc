// End-to-end tests: real ferry initiator and terminator processes on loopback, with ferry-load
// (and in-test socket peers) as clients and upstreams (e2e_harness.h). Every process is killed by
// PID when its Process object goes away, so a failing test leaves nothing running.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "e2e_harness.h"
#include "process.h"

namespace ferry::e2e {
namespace {

TEST_F(E2e, SixtyFourClientsPushQuarterGigabyteByteExact) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    // Two initiator shards, one terminator shard: two tunnel connections share one shard there.
    Tunnel t(dir_, echo_port, 2, {}, {}, /*terminator_shards=*/1);
    ASSERT_TRUE(t.ready());
    // 64 x 4 MiB each way, with random write sizes, half-close and xxHash64 of every stream.
    EXPECT_EQ(verify(t.listen_port_, 64, "4MiB"), 0);
    // More streams than one stream window each fits in the connection window.
    EXPECT_EQ(verify(t.listen_port_, 128, "1MiB"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_streams_opened_total"), 64 + 128);
    EXPECT_GE(t.initiator_metric("ferry_bytes_from_local_total"), 64LL << 22);
    // The plain tunnel path copies no payload byte in user space.
    EXPECT_EQ(t.initiator_metric("ferry_bytes_copied_total"), 0);
    EXPECT_EQ(t.terminator_metric("ferry_bytes_copied_total"), 0);
    EXPECT_TRUE(testlib::wait_until([&] { return t.initiator_metric("ferry_streams_active") == 0; },
                                    10000));
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
}

TEST_F(E2e, HalfCloseFromUpstreamKeepsTheClientDirectionOpen) {
    uint16_t up_port = 0;
    int lfd = listen_on(&up_port);
    ReadResult received_by_upstream;
    std::thread upstream([&] {
        int fd = accept_within(lfd, 20000);
        if (fd < 0) {
            return;
        }
        const char hello[] = "hello from upstream";
        (void)testlib::write_all(fd, hello, sizeof(hello) - 1);
        shutdown(fd, SHUT_WR);  // upstream half-closes first
        received_by_upstream = testlib::read_all(fd, 20000);
        close(fd);
    });
    Tunnel t(dir_, up_port, 1);
    ASSERT_TRUE(t.ready());
    int c = testlib::connect_to(t.listen_port_);
    ASSERT_GE(c, 0);
    // The client sees the upstream's bytes and then EOF (a FIN, not a reset or a hang)...
    ReadResult got = testlib::read_all(c, 20000);
    EXPECT_EQ(got.bytes, "hello from upstream");
    EXPECT_EQ(got.end, ReadEnd::Eof);
    // ...and can still send, which the upstream receives until the client's own FIN.
    std::string late(300000, 'x');
    EXPECT_TRUE(testlib::write_all(c, late.data(), late.size()));
    shutdown(c, SHUT_WR);
    upstream.join();
    close(c);
    close(lfd);
    EXPECT_EQ(received_by_upstream.end, ReadEnd::Eof) << "the client's FIN did not arrive";
    EXPECT_EQ(received_by_upstream.bytes.size(), late.size());
    EXPECT_TRUE(received_by_upstream.bytes == late) << "upstream got different bytes";
}

TEST_F(E2e, RefusingUpstreamResetsOnlyItsStreamAndTheTunnelStaysUp) {
    uint16_t closed_port = testlib::free_port();  // nothing listens here
    Tunnel t(dir_, closed_port, 1);
    ASSERT_TRUE(t.ready());
    int c = testlib::connect_to(t.listen_port_);
    ASSERT_GE(c, 0);
    // The client gets a reset, as a direct connect to a closed port would, and not a hang.
    ReadResult closed = testlib::read_all(c, 20000);
    EXPECT_EQ(closed.end, ReadEnd::Reset);
    EXPECT_EQ(closed.bytes, "");
    close(c);
    EXPECT_GE(t.terminator_metric("ferry_upstream_connect_errors_total"), 1);
    EXPECT_GE(t.initiator_metric("ferry_resets_received_total"), 1);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
    // Once the upstream exists, the same tunnel carries traffic.
    auto echo = start_echo(closed_port);
    EXPECT_EQ(verify(t.listen_port_, 4, "256KiB"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_connects_total"), 1);
}

TEST_F(E2e, UpstreamDyingMidStreamResetsOnlyThatStream) {
    uint16_t up_port = 0;
    int lfd = listen_on(&up_port);
    std::atomic<bool> stop{false};
    // Echo upstream; a connection that starts with "DIE" is reset (RST) after its first read.
    std::thread upstream([&] {
        std::vector<std::thread> conns;
        while (!stop) {
            int fd = accept_within(lfd, 200);
            if (fd < 0) {
                continue;
            }
            conns.emplace_back([fd] {
                char buf[65536];
                bool first = true;
                for (;;) {
                    ssize_t n = read(fd, buf, sizeof(buf));
                    if (n <= 0) {
                        shutdown(fd, SHUT_WR);
                        break;
                    }
                    if (first && n >= 3 && std::memcmp(buf, "DIE", 3) == 0) {
                        linger l{1, 0};
                        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
                        break;
                    }
                    first = false;
                    if (!testlib::write_all(fd, buf, static_cast<size_t>(n))) {
                        break;
                    }
                }
                close(fd);
            });
        }
        for (auto& th : conns) {
            th.join();
        }
    });
    Tunnel t(dir_, up_port, 1);
    ASSERT_TRUE(t.ready());
    int victim = testlib::connect_to(t.listen_port_);
    ASSERT_GE(victim, 0);
    // Healthy streams on the same tunnel run alongside.
    std::thread healthy([&] { EXPECT_EQ(verify(t.listen_port_, 8, "2MiB"), 0); });
    EXPECT_TRUE(testlib::write_all(victim, "DIE now", 7));
    // The upstream's RST reaches the client as a RST: an abort stays an abort, never a FIN
    // that would pass a truncated reply off as complete.
    ReadResult closed = testlib::read_all(victim, 20000);
    EXPECT_EQ(closed.end, ReadEnd::Reset);
    EXPECT_EQ(closed.bytes, "");
    close(victim);
    healthy.join();
    stop = true;
    upstream.join();
    close(lfd);
    EXPECT_GE(t.initiator_metric("ferry_resets_received_total"), 1);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
}

TEST_F(E2e, RoguePeersAreDisconnectedWithAReasonWhileTheRealTunnelCarriesOn) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1);
    ASSERT_TRUE(t.ready());
    // Each rogue connection is closed by ferry with a FIN, not reset and not left hanging.
    EXPECT_EQ(rogue_peer(t.tunnel_port_, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").end, ReadEnd::Eof);
    // A valid preface and HELLO, then a frame header claiming a 64 MiB payload.
    std::string oversized(
        "\x89"
        "FERRY\r\n",
        8);
    const unsigned char hello[] = {0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1};
    oversized.append(reinterpret_cast<const char*>(hello), sizeof(hello));
    const unsigned char huge[] = {0x04, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 1};
    oversized.append(reinterpret_cast<const char*>(huge), sizeof(huge));
    EXPECT_EQ(rogue_peer(t.tunnel_port_, oversized).end, ReadEnd::Eof);
    ASSERT_TRUE(testlib::wait_until(
        [&] {
            std::string log = t.terminator->log();
            return log.find("bad preface") != std::string::npos &&
                   log.find("FrameSizeError") != std::string::npos;
        },
        10000))
        << t.terminator->log();
    EXPECT_EQ(t.terminator_metric("ferry_tunnel_protocol_errors_total"), 2);
    // The terminator still serves: alive, and it takes and judges a new tunnel connection.
    EXPECT_TRUE(t.terminator->running());
    EXPECT_EQ(rogue_peer(t.tunnel_port_, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").end, ReadEnd::Eof);
    EXPECT_TRUE(testlib::wait_until(
        [&] { return t.terminator_metric("ferry_tunnel_protocol_errors_total") == 3; }, 10000));
    // The established tunnel never noticed.
    EXPECT_EQ(verify(t.listen_port_, 8, "1MiB"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
}

TEST_F(E2e, SigtermDrainsAnInFlightStreamAndExitsZero) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(
        dir_, echo_port, 1,
        {"--log-level", std::getenv("FERRY_TEST_LOG") ? std::getenv("FERRY_TEST_LOG") : "info"});
    ASSERT_TRUE(t.ready());
    int c = testlib::connect_to(t.listen_port_);
    ASSERT_GE(c, 0);
    std::string first(100000, 'a');
    ASSERT_TRUE(testlib::write_all(c, first.data(), first.size()));
    ASSERT_TRUE(testlib::wait_until([&] { return t.initiator_metric("ferry_streams_active") == 1; },
                                    10000));
    t.initiator->signal(SIGTERM);
    // New clients are no longer taken once the drain began...
    ASSERT_TRUE(testlib::wait_until([&] { return refuses_connections(t.listen_port_); }, 10000));
    // ...while the open stream finishes: the rest goes through and every byte comes back.
    std::string rest(200000, 'b');
    ASSERT_TRUE(testlib::write_all(c, rest.data(), rest.size()));
    shutdown(c, SHUT_WR);
    ReadResult echoed = testlib::read_all(c, 20000);
    close(c);
    EXPECT_EQ(echoed.end, ReadEnd::Eof);
    EXPECT_EQ(echoed.bytes.size(), first.size() + rest.size());
    EXPECT_TRUE(echoed.bytes == first + rest) << "echo differs from what was sent";
    std::optional<int> rc = t.initiator->wait(15000);
    ASSERT_TRUE(rc.has_value());
    EXPECT_EQ(*rc, 0);
    EXPECT_NE(t.initiator->log().find("drained"), std::string::npos);
    t.terminator->signal(SIGTERM);
    EXPECT_EQ(t.terminator->wait(15000).value_or(-1), 0);
}

TEST_F(E2e, TunnelLossClosesClientsAndTheInitiatorReconnects) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1);
    ASSERT_TRUE(t.ready());
    int c = testlib::connect_to(t.listen_port_);
    ASSERT_GE(c, 0);
    ASSERT_TRUE(testlib::write_all(c, "ping", 4));
    char echo_buf[4] = {};
    ASSERT_EQ(recv(c, echo_buf, 4, MSG_WAITALL), 4);
    t.terminator->signal(SIGKILL);
    (void)t.terminator->wait(5000);
    // The stream dies with its tunnel: the client sees a reset (it was cut short), not a FIN and
    // not a hang.
    ReadResult closed = testlib::read_all(c, 20000);
    EXPECT_EQ(closed.end, ReadEnd::Reset);
    EXPECT_EQ(closed.bytes, "");
    close(c);
    EXPECT_TRUE(testlib::wait_until(
        [&] { return testlib::http_get(t.admin_i_, "/ready").status == 503; }, 10000));
    t.start_terminator();
    ASSERT_TRUE(t.ready(30000));
    EXPECT_EQ(verify(t.listen_port_, 4, "512KiB"), 0);
    EXPECT_GE(t.initiator_metric("ferry_tunnel_connects_total"), 2);
}

TEST_F(E2e, AdminEndpointsReportHealthReadinessAndMetrics) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 2);
    ASSERT_TRUE(t.ready());
    EXPECT_EQ(testlib::http_get(t.admin_i_, "/health").status, 200);
    EXPECT_EQ(testlib::http_get(t.admin_i_, "/nope").status, 404);
    std::string metrics = testlib::http_get(t.admin_i_, "/metrics").body;
    EXPECT_NE(metrics.find("# TYPE ferry_streams_opened_total counter"), std::string::npos);
    EXPECT_NE(metrics.find("ferry_tunnel_up{shard=\"1\"} 1"), std::string::npos);
    EXPECT_EQ(testlib::metric_sum(metrics, "ferry_tunnel_up"), 2);
    EXPECT_EQ(testlib::http_get(t.admin_t_, "/ready").status, 200);
}

// The armored tunnel's transports: mutual TLS 1.3 straight on TCP, or inside a WebSocket, or
// inside a gRPC call.
class ArmoredE2e : public E2e, public ::testing::WithParamInterface<const char*> {
  protected:
    // `extra` with the transport under test (the later --tunnel-transport wins).
    static std::vector<std::string> with_transport(std::vector<std::string> extra) {
        extra.insert(extra.end(), {"--tunnel-transport", GetParam()});
        return extra;
    }
    static bool ws() { return std::string_view(GetParam()) == "ws"; }
    static bool grpc() { return std::string_view(GetParam()) == "grpc"; }
};

INSTANTIATE_TEST_SUITE_P(Transports, ArmoredE2e, ::testing::Values("tls", "ws", "grpc"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                             return std::string(p.param);
                         });

TEST_P(ArmoredE2e, EchoesThroughTheTunnel) {
    std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, with_transport({}), pki);
    ASSERT_TRUE(t.ready());
    EXPECT_EQ(verify(t.listen_port_, 1, "64KiB"), 0);
    EXPECT_GE(t.initiator_metric("ferry_tls_handshakes_total"), 1);
    EXPECT_EQ(t.initiator_metric("ferry_ws_upgrades_total"), ws() ? 1 : 0);
    EXPECT_EQ(t.terminator_metric("ferry_ws_upgrades_total"), ws() ? 1 : 0);
    EXPECT_EQ(t.initiator_metric("ferry_ws_upgrade_failures_total"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_grpc_tunnel_streams_total"), grpc() ? 1 : 0);
    EXPECT_EQ(t.terminator_metric("ferry_grpc_tunnel_streams_total"), grpc() ? 1 : 0);
    EXPECT_EQ(t.initiator_metric("ferry_grpc_tunnel_failures_total"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
}

TEST_P(ArmoredE2e, RotatingKeysEvery100msCarriesQuarterGigabyteInOrder) {
    std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 2,
             with_transport({"--rekey-bytes", "1MiB", "--rekey-interval", "100ms"}), pki);
    ASSERT_TRUE(t.ready());
    // 64 streams x 4 MiB each way; every stream's bytes and order are checked with xxHash64.
    EXPECT_EQ(verify(t.listen_port_, 64, "4MiB"), 0);
    EXPECT_GE(t.initiator_metric("ferry_tls_handshakes_total"), 2);
    // Rotation happened on both ends and disturbed nothing.
    int64_t rotations = t.initiator_metric("ferry_key_updates_sent_total") +
                        t.initiator_metric("ferry_rotations_reconnect_total");
    EXPECT_GE(rotations, 64);
    EXPECT_GE(t.terminator_metric("ferry_key_updates_sent_total") +
                  t.terminator_metric("ferry_rotations_reconnect_total"),
              64);
    EXPECT_EQ(t.initiator_metric("ferry_resets_received_total"), 0);
    EXPECT_EQ(t.terminator_metric("ferry_resets_received_total"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_protocol_errors_total"), 0);
}

TEST_P(ArmoredE2e, OnTheSmallestPoolsLosesNoStream) {
    std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    // The smallest pools on one shard: 128 streams can pin most buffers, so sealing a TLS record
    // or gathering one split across receive buffers may find both pools empty and have to wait
    // (whether it does depends on timing; tests/unit/tunnel/tls_link_test.cc makes it happen).
    Tunnel t(dir_, echo_port, 1,
             with_transport({"--buffer-count", "64", "--tunnel-buffer-count", "64"}), pki);
    ASSERT_TRUE(t.ready());
    EXPECT_EQ(verify(t.listen_port_, 128, "2MiB"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_resets_received_total"), 0);
    EXPECT_EQ(t.terminator_metric("ferry_resets_received_total"), 0);
}

TEST_F(E2e, WsTunnelPortAnswersAWebSocketClientAtTheWrongPathWith404) {
    std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {"--tunnel-transport", "ws"}, pki);
    ASSERT_TRUE(t.ready());
    // A well-formed WebSocket upgrade, as any WebSocket client sends it, at the wrong path.
    const std::string upgrade =
        "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
        "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
        "13\r\nSec-WebSocket-Protocol: ferry-tunnel\r\n\r\n";
    ReadResult r = rogue_peer(t.tunnel_port_, upgrade);
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 404 ", 0), 0U) << r.bytes;
    EXPECT_EQ(r.end, ReadEnd::Eof) << "refused and closed";
    // Not an upgrade at all: 400.
    r = rogue_peer(t.tunnel_port_, "GET /ferry/tunnel HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 400 ", 0), 0U) << r.bytes;
    EXPECT_EQ(t.terminator_metric("ferry_ws_upgrade_failures_total"), 2);
    // The tunnel itself never noticed.
    EXPECT_EQ(verify(t.listen_port_, 4, "256KiB"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
}

// An HTTP/2 frame as a raw peer sends it.
std::string h2_frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
    std::string out;
    for (int shift : {16, 8, 0}) {
        out += static_cast<char>(payload.size() >> shift);
    }
    out += static_cast<char>(type);
    out += static_cast<char>(flags);
    for (int shift : {24, 16, 8, 0}) {
        out += static_cast<char>(stream >> shift);
    }
    out += payload;
    return out;
}

// The types of the frames in `wire`, in order, as "type/flags/stream" words.
std::vector<std::string> h2_frame_kinds(std::string_view wire) {
    std::vector<std::string> out;
    while (wire.size() >= 9) {
        const auto* p = reinterpret_cast<const uint8_t*>(wire.data());
        const size_t len = (size_t{p[0]} << 16) | (size_t{p[1]} << 8) | p[2];
        if (wire.size() < 9 + len) {
            break;
        }
        out.push_back(std::to_string(p[3]) + "/" + std::to_string(p[4]) + "/" +
                      std::to_string(p[8]));
        wire.remove_prefix(9 + len);
    }
    return out;
}

TEST_F(E2e, GrpcTunnelPortRefusesACallAtTheWrongPathAndKeepsServing) {
    std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {"--tunnel-transport", "grpc"}, pki);
    ASSERT_TRUE(t.ready());
    // A well-formed gRPC call, as any gRPC client opens it, at another method. HPACK literals
    // without indexing (RFC 7541 §6.2.2).
    auto literal = [](std::string_view name, std::string_view value) {
        return std::string(1, '\0') + static_cast<char>(name.size()) + std::string(name) +
               static_cast<char>(value.size()) + std::string(value);
    };
    const std::string block =
        literal(":method", "POST") + literal(":scheme", "http") +
        literal(":path", "/grpc.health.v1.Health/Check") + literal(":authority", "ferry") +
        literal("content-type", "application/grpc") + literal("te", "trailers");
    const std::string call = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                             h2_frame(4, 0, 0, "") + h2_frame(1, 4 | 1, 1, block);
    ReadResult r = rogue_peer(t.tunnel_port_, call);
    const std::vector<std::string> kinds = h2_frame_kinds(r.bytes);
    // Trailers-only (HEADERS with END_STREAM on stream 1: grpc-status 12), then GOAWAY.
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), "1/5/1"), kinds.end()) << r.bytes.size();
    EXPECT_NE(std::find_if(kinds.begin(), kinds.end(),
                           [](const std::string& k) { return k.rfind("7/", 0) == 0; }),
              kinds.end());
    EXPECT_EQ(r.end, ReadEnd::Eof) << "refused and closed";
    // Not HTTP/2 at all: GOAWAY and close.
    r = rogue_peer(t.tunnel_port_, "GET /ferry/tunnel HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::vector<std::string> kinds2 = h2_frame_kinds(r.bytes);
    EXPECT_NE(std::find_if(kinds2.begin(), kinds2.end(),
                           [](const std::string& k) { return k.rfind("7/", 0) == 0; }),
              kinds2.end());
    EXPECT_EQ(t.terminator_metric("ferry_grpc_tunnel_failures_total"), 2);
    // The tunnel itself never noticed.
    EXPECT_EQ(verify(t.listen_port_, 4, "256KiB"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
    EXPECT_EQ(t.terminator_metric("ferry_grpc_tunnel_streams_total"), 1);
}

// Runs `cmd` (a shell line) with a bound and returns its output.
std::string run_shell(const std::string& dir, const std::string& cmd) {
    Process p({"/bin/sh", "-c", cmd}, dir + "/shell.log");
    (void)p.wait(30000);
    return p.log();
}

TEST_F(E2e, TerminatorRefusesBadClientsWithAReasonAndKeepsItsTunnel) {
    std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {}, pki);
    ASSERT_TRUE(t.ready());
    std::string target = addr(t.tunnel_port_);
    // An initiator whose client certificate expired.
    {
        uint16_t lp = testlib::free_port();
        std::vector<std::string> args = {ferry_bin(), "initiator", "--listen", addr(lp), "--peer",
                                         target,      "--shards",  "1",        "--cpus", "none"};
        std::vector<std::string> f = tls_flags(pki, "expired-initiator");
        args.insert(args.end(), f.begin(), f.end());
        Process bad(args, dir_ + "/expired.log");
        EXPECT_TRUE(testlib::wait_until(
            [&] {
                return t.terminator->log().find("certificate has expired") != std::string::npos;
            },
            20000))
            << t.terminator->log();
    }
    // No client certificate; TLS 1.2 only; a client certificate from another CA; plaintext.
    std::string s_client = "timeout 10 openssl s_client -connect " + target + " -CAfile " + pki +
                           "/ca.crt -servername ferry-terminator </dev/null 2>&1";
    (void)run_shell(dir_, s_client);
    (void)run_shell(dir_,
                    "timeout 10 openssl s_client -tls1_2 -connect " + target + " </dev/null 2>&1");
    (void)run_shell(dir_, "timeout 10 openssl s_client -connect " + target + " -cert " + pki +
                              "/foreign-terminator.crt -key " + pki +
                              "/foreign-terminator.key -CAfile " + pki + "/ca.crt </dev/null 2>&1");
    // Plaintext HTTP to the TLS port: refused and closed, not left open.
    EXPECT_EQ(rogue_peer(t.tunnel_port_, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").end, ReadEnd::Eof);
    for (const char* reason :
         {"certificate has expired", "no client certificate",
          "peer offered TLS 1.2, ferry requires TLS 1.3", "unable to get local issuer certificate",
          "not TLS: first bytes look like HTTP"}) {
        EXPECT_TRUE(testlib::wait_until(
            [&] { return t.terminator->log().find(reason) != std::string::npos; }, 20000))
            << reason << "\n"
            << t.terminator->log();
    }
    EXPECT_GE(t.terminator_metric("ferry_tls_handshake_failures_total"), 5);
    // The established tunnel never noticed any of it.
    EXPECT_EQ(verify(t.listen_port_, 8, "1MiB"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
}

TEST_F(E2e, InitiatorRefusesTerminatorsWithTheWrongNameOrCa) {
    std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    for (const auto& [cert, reason] :
         {std::pair<std::string, std::string>{"wrong-san-terminator", "peer name mismatch"},
          {"foreign-terminator", "peer certificate verify failed"}}) {
        uint16_t tp = testlib::free_port();
        uint16_t lp = testlib::free_port();
        uint16_t ap = testlib::free_port();
        std::vector<std::string> targs = {
            ferry_bin(), "terminator", "--listen-tunnel", addr(tp), "--upstream", addr(echo_port),
            "--shards", "1", "--cpus", "none", "--tunnel-transport", "tls", "--tls-cert",
            pki + "/" + cert + ".crt", "--tls-key", pki + "/" + cert + ".key",
            // Its own CA file is the one that signed its certificate.
            "--tls-ca", pki + (cert == "foreign-terminator" ? "/foreign-ca.crt" : "/ca.crt")};
        Process rogue(targs, dir_ + "/rogue.log");
        std::vector<std::string> iargs = {ferry_bin(), "initiator", "--listen", addr(lp),
                                          "--peer",    addr(tp),    "--admin",  addr(ap),
                                          "--shards",  "1",         "--cpus",   "none"};
        std::vector<std::string> f = tls_flags(pki, "initiator");
        iargs.insert(iargs.end(), f.begin(), f.end());
        Process init(iargs, dir_ + "/initiator2.log");
        EXPECT_TRUE(testlib::wait_until(
            [&] { return init.log().find(reason) != std::string::npos; }, 20000))
            << init.log();
        EXPECT_EQ(testlib::http_get(ap, "/ready").status, 503);
    }
}

TEST(Cli, BadFlagsExitWithCodeTwoAndOneLine) {
    std::string dir = testlib::make_temp_dir();
    struct Case {
        std::vector<std::string> args;
        const char* expect;
    };
    std::vector<Case> cases = {
        {{"initiator", "--shards=abc", "--listen", "127.0.0.1:1", "--peer", "127.0.0.1:2"},
         "--shards"},
        {{"initiator", "--tunnel-transport=plain", "--listen", "127.0.0.1:1"}, "--peer"},
        {{"terminator", "--tunnel-transport=plain", "--listen-tunnel", "127.0.0.1:1", "--upstream",
          "nohost"},
         "--upstream"},
        {{"initiator", "--no-such-flag=1"}, "unknown flag"},
        {{"initiator", "--tunnel-transport=plain", "--ring-entries=1000", "--listen", "127.0.0.1:1",
          "--peer", "127.0.0.1:2"},
         "--ring-entries"},
        {{"bridge"}, "unknown role"},
        {{"initiator", "--listen", "127.0.0.1:1", "--peer", "127.0.0.1:2"}, "--tls-cert"},
        {{"initiator", "--listen", "127.0.0.1:1", "--peer", "127.0.0.1:2",
          "--tunnel-transport=quic"},
         "--tunnel-transport: expected tls (default), ws, grpc or plain"},
        {{"initiator", "--listen", "127.0.0.1:1", "--peer", "127.0.0.1:2", "--tunnel-transport=ws"},
         "--tls-cert: is required with --tunnel-transport=ws"},
        {{"initiator", "--listen", "127.0.0.1:1", "--peer", "127.0.0.1:2",
          "--tunnel-transport=plain", "--ktls=maybe"},
         "--ktls"},
        // Listener and upstream URLs: protocols this build does not serve yet, bad schemes,
        // two ws upstreams or one tcp upstream address twice, one peer or listener address twice,
        // a malformed route key.
        {{"initiator", "--tunnel-transport=plain", "--listen", "grpcs://127.0.0.1:1", "--peer",
          "127.0.0.1:2"},
         "--listen-tls-cert: is required for a wss:// or grpcs:// listener"},
        {{"initiator", "--tunnel-transport=plain", "--listen", "wss://127.0.0.1:1/chat", "--peer",
          "127.0.0.1:2"},
         "--listen-tls-cert: is required for a wss:// or grpcs:// listener"},
        {{"terminator", "--tunnel-transport=plain", "--listen-tunnel", "127.0.0.1:1", "--upstream",
          "wss://127.0.0.1:2/"},
         "wss:// upstream is not served"},
        {{"initiator", "--tunnel-transport=plain", "--listen", "ws://127.0.0.1:1/", "--peer",
          "127.0.0.1:2", "--ws-max-message=0"},
         "--ws-max-message"},
        {{"initiator", "--tunnel-transport=plain", "--listen", "127.0.0.1:3", "--listen",
          "grpcs://127.0.0.1:1", "--peer", "127.0.0.1:2"},
         "--listen"},
        {{"terminator", "--tunnel-transport=plain", "--listen-tunnel", "127.0.0.1:1", "--upstream",
          "grpcs://127.0.0.1:2", "--upstream-tls-ca", "/no/such/ca.pem"},
         "--upstream-tls-ca: cannot read"},
        {{"terminator", "--tunnel-transport=plain", "--listen-tunnel", "127.0.0.1:1", "--upstream",
          "grpc://127.0.0.1:2", "--upstream-tls-ca", "/etc/hostname"},
         "--upstream-tls-ca: is set but no --upstream is a grpcs:// URL"},
        {{"terminator", "--tunnel-transport=plain", "--listen-tunnel", "127.0.0.1:1", "--upstream",
          "http://127.0.0.1:2"},
         "unknown scheme"},
        {{"terminator", "--tunnel-transport=plain", "--listen-tunnel", "127.0.0.1:1", "--upstream",
          "ws://127.0.0.1:2", "--upstream", "ws://127.0.0.1:2/b"},
         "the same address"},
        {{"terminator", "--tunnel-transport=plain", "--listen-tunnel", "127.0.0.1:1", "--upstream",
          "127.0.0.1:2", "--upstream", "tcp://127.0.0.1:2"},
         "the same address"},
        {{"initiator", "--tunnel-transport=plain", "--listen", "127.0.0.1:1", "--peer",
          "127.0.0.1:2", "--peer", "127.0.0.1:2"},
         "given twice"},
        {{"initiator", "--tunnel-transport=plain", "--listen", "127.0.0.1:1", "--peer",
          "127.0.0.1:2", "--route-key", "cookie:x"},
         "--route-key"},
        {{"initiator", "--tunnel-transport=plain", "--listen", "127.0.0.1:1", "--listen",
          "tcp://127.0.0.1:1", "--peer", "127.0.0.1:2"},
         "same address"},
    };
    for (const Case& c : cases) {
        std::vector<std::string> argv = {ferry_bin()};
        argv.insert(argv.end(), c.args.begin(), c.args.end());
        Process p(argv, dir + "/cli.log");
        EXPECT_EQ(p.wait(10000).value_or(-1), 2) << c.expect;
        std::string out = p.log();
        EXPECT_NE(out.find(c.expect), std::string::npos) << out;
        EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    }
    Process help({ferry_bin(), "--help"}, dir + "/help.log");
    EXPECT_EQ(help.wait(10000).value_or(-1), 0);
    for (const char* flag : {"--shards",
                             "--cpus",
                             "--ring-entries",
                             "--sqpoll",
                             "--buffer-size",
                             "--buffer-count",
                             "--zerocopy-threshold",
                             "--stream-window",
                             "--connection-window",
                             "--max-connections",
                             "--max-streams",
                             "--connect-timeout",
                             "--drain-timeout",
                             "--log-level",
                             "--tls-cert",
                             "--tls-key",
                             "--tls-ca",
                             "--peer-name",
                             "--allowed-peers",
                             "--ktls",
                             "--rekey-bytes",
                             "--rekey-interval",
                             "--tls-ciphers",
                             "--ws-max-message",
                             "--tunnel-transport",
                             "--tunnel-ws-path",
                             "--tunnel-grpc-path"}) {
        EXPECT_NE(help.log().find(flag), std::string::npos) << flag;
    }
    Process version({ferry_bin(), "--version"}, dir + "/version.log");
    EXPECT_EQ(version.wait(10000).value_or(-1), 0);
    EXPECT_EQ(version.log().rfind("ferry 0.", 0), 0U) << version.log();
    EXPECT_NE(version.log().find("kernel TLS"), std::string::npos) << version.log();
    testlib::remove_tree(dir);
}

}  // namespace
}  // namespace ferry::e2e
