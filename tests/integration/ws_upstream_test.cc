// End-to-end tests of the terminator's ws:// upstream: real ferry processes, a ws:// listener at
// the initiator and a real WebSocket server behind the terminator (ws_echo_server.py), driven by
// a real client (ws_client.py --echo), both on Debian's python3-websockets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "e2e_harness.h"
#include "process.h"

namespace ferry::e2e {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

std::string source_dir() {
    const char* src = std::getenv("FERRY_SOURCE_DIR");
    return src != nullptr ? src : ".";
}

class WsUpstreamE2e : public E2e {
  protected:
    void SetUp() override {
        E2e::SetUp();
        Process probe({kPython, "-c", "import websockets"}, dir_ + "/probe.log");
        if (probe.wait(30000).value_or(-1) != 0) {
            GTEST_SKIP() << "python3-websockets is not installed (tools/setup.sh installs it)";
        }
    }

    // ws_echo_server.py on `port`, once it takes connections.
    std::unique_ptr<Process> start_ws_echo(uint16_t port) {
        auto p = std::make_unique<Process>(
            std::vector<std::string>{kPython, source_dir() + "/tests/integration/ws_echo_server.py",
                                     "--port", std::to_string(port)},
            dir_ + "/echo.log");
        EXPECT_TRUE(wait_listening(port, 20000));
        return p;
    }

    // The pair with a ws:// listener on `listen_path` and the upstream ws://127.0.0.1:PORT
    // `upstream_path`.
    std::unique_ptr<Tunnel> start_tunnel(uint16_t upstream_port, const std::string& listen_path,
                                         const std::string& upstream_path) {
        auto t = std::make_unique<Tunnel>(dir_, upstream_port, 1, std::vector<std::string>{},
                                          std::string{}, 0, std::vector<std::string>{}, listen_path,
                                          upstream_path);
        EXPECT_TRUE(t->ready());
        return t;
    }

    // ws_client.py --echo against the initiator; its exit code (its log goes to stderr).
    int run_echo_client(const Tunnel& t, const std::string& path, const std::string& expect_path,
                        const std::string& sizes = "0,125,126,65536,1048576") {
        Process client(
            {kPython, source_dir() + "/tests/integration/ws_client.py", "--echo", "--url",
             "ws://127.0.0.1:" + std::to_string(t.listen_port_) + path, "--sizes", sizes,
             "--timeout", "20", "--subprotocols", "chat.v2,chat.v1", "--expect-path", expect_path,
             "--expect-trail", "cluster-a-0, cluster-b-0", "--close-code", "4002"},
            dir_ + "/ws_client.log");
        const int rc = client.wait(120000).value_or(-1);
        std::fprintf(stderr, "%s", client.log().c_str());
        return rc;
    }
};

TEST_F(WsUpstreamE2e, MessagesEchoExactlyThroughARealWebSocketServer) {
    const uint16_t port = testlib::free_port();
    auto server = start_ws_echo(port);
    auto t = start_tunnel(port, "/", "/");
    // Sizes around the 7-bit and 16-bit length encodings, 64 KiB and 1 MiB, text and binary;
    // the upstream sees the client's path and query as is, and the trail of both nodes.
    EXPECT_EQ(run_echo_client(*t, "/room/7?user=ann", "/room/7?user=ann"), 0);
    EXPECT_GE(t->terminator_metric("ferry_connections_accepted_total"), 1);
    EXPECT_TRUE(testlib::wait_until(
        [&] { return t->terminator_metric("ferry_streams_active") == 0; }, 10000));
}

TEST_F(WsUpstreamE2e, AnUpstreamPathTakesTheClientsQuery) {
    const uint16_t port = testlib::free_port();
    auto server = start_ws_echo(port);
    auto t = start_tunnel(port, "/", "/backend/ws");
    EXPECT_EQ(run_echo_client(*t, "/front?x=1&y=2", "/backend/ws?x=1&y=2", "0,125"), 0);
}

TEST_F(WsUpstreamE2e, SeveralUpstreamsShareTheKeysAndEachKeySticksToItsPod) {
    const uint16_t port_a = testlib::free_port();
    const uint16_t port_b = testlib::free_port();
    auto pod_a = start_ws_echo(port_a);
    auto pod_b = start_ws_echo(port_b);
    // Two ws:// upstreams ("pods" told apart by their paths): the OPEN's routing key picks one.
    Tunnel t(dir_, port_a, 1, {}, {}, 0,
             {"--upstream", "ws://127.0.0.1:" + std::to_string(port_b) + "/pod-b"}, "/", "/pod-a");
    ASSERT_TRUE(t.ready());
    // Each key connects twice and asks "whoami": both answers name the same pod; the 40 keys
    // spread over both pods.
    const std::string script = R"PY(
import asyncio, json, sys
import websockets.client as wsc
async def pod(url, key):
    async with wsc.connect(url, extra_headers={"X-Routing-Key": key}, open_timeout=10) as ws:
        await ws.send("whoami")
        return json.loads(await asyncio.wait_for(ws.recv(), 10))["path"]
async def main():
    url, seen = sys.argv[1], {}
    for k in range(40):
        key = "user-%d" % k
        first, again = await pod(url, key), await pod(url, key)
        if first != again:
            sys.exit("%s went to %s, then to %s" % (key, first, again))
        seen[first] = seen.get(first, 0) + 1
    print(json.dumps(seen))
    if sorted(seen) != ["/pod-a", "/pod-b"]:
        sys.exit("keys did not spread over both pods: %r" % seen)
asyncio.run(main())
)PY";
    Process client(
        {kPython, "-c", script, "ws://127.0.0.1:" + std::to_string(t.listen_port_) + "/"},
        dir_ + "/ws_client.log");
    EXPECT_EQ(client.wait(120000).value_or(-1), 0) << client.log();
    EXPECT_EQ(t.terminator_metric("ferry_connections_accepted_total"), 80);
}

TEST_F(WsUpstreamE2e, ARefusedUpstreamFailsTheClientHandshakeWith502) {
    const uint16_t port = testlib::free_port();  // nothing listens there
    auto t = start_tunnel(port, "/", "/");
    const std::string upgrade =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    int fd = testlib::connect_to(t->listen_port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testlib::write_all(fd, upgrade.data(), upgrade.size()));
    testlib::ReadResult r = testlib::read_all(fd, 15000);
    close(fd);
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 502", 0), 0U) << r.bytes;
    EXPECT_NE(r.bytes.find("ConnectRefused"), std::string::npos) << r.bytes;
    EXPECT_GE(t->terminator_metric("ferry_upstream_connect_errors_total"), 1);
}

TEST_F(WsUpstreamE2e, AnUpstreamThatNeverAnswersTheUpgradeTimesOutWith504) {
    // A listener that never accepts: the kernel completes the connect and keeps the request, and
    // no answer ever comes. The terminator's --connect-timeout (1 s, shorter than the
    // initiator's) resets the stream with Timeout; the client hears 504 naming it.
    uint16_t port = 0;
    const int silent = listen_on(&port);
    ASSERT_GE(silent, 0);
    auto t =
        std::make_unique<Tunnel>(dir_, port, 1, std::vector<std::string>{}, std::string{}, 0,
                                 std::vector<std::string>{"--connect-timeout", "1s"}, "/", "/");
    ASSERT_TRUE(t->ready());
    const std::string upgrade =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    int fd = testlib::connect_to(t->listen_port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testlib::write_all(fd, upgrade.data(), upgrade.size()));
    testlib::ReadResult r = testlib::read_all(fd, 15000);
    close(fd);
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 504 Gateway Timeout", 0), 0U) << r.bytes;
    EXPECT_NE(r.bytes.find("reset: Timeout"), std::string::npos) << r.bytes;
    EXPECT_GE(t->terminator_metric("ferry_upstream_connect_errors_total"), 1);
    EXPECT_TRUE(testlib::wait_until(
        [&] { return t->terminator_metric("ferry_connections_active") == 0; }, 10000));
    close(silent);
}

}  // namespace
}  // namespace ferry::e2e
