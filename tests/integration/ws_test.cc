// End-to-end WebSocket tests: real ferry processes, a ws:// listener at the initiator and the
// terminator's built-in sink, driven by a real client (Debian's python3-websockets, through
// ws_client.py) and by raw sockets for the failures a library client would never produce.
#include <gtest/gtest.h>
#include <sys/socket.h>
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

// A valid Upgrade request for "/" (the RFC 6455 example key).
const std::string kUpgrade =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// The code of the first Close frame in `bytes` (server frames are unmasked), or -1.
int close_code_in(const std::string& bytes) {
    for (size_t i = 0; i + 4 <= bytes.size(); ++i) {
        if (static_cast<uint8_t>(bytes[i]) == 0x88 && static_cast<uint8_t>(bytes[i + 1]) >= 2 &&
            static_cast<uint8_t>(bytes[i + 1]) <= 125) {
            return (static_cast<uint8_t>(bytes[i + 2]) << 8) | static_cast<uint8_t>(bytes[i + 3]);
        }
    }
    return -1;
}

class WsE2e : public E2e {
  protected:
    void SetUp() override {
        E2e::SetUp();
        Process probe({kPython, "-c", "import websockets"}, dir_ + "/probe.log");
        if (probe.wait(30000).value_or(-1) != 0) {
            GTEST_SKIP() << "python3-websockets is not installed (tools/setup.sh installs it)";
        }
    }

    // Starts the pair with a ws:// listener; the terminator's TCP upstream is never used.
    std::unique_ptr<Tunnel> start_tunnel(const std::string& path = "/",
                                         std::vector<std::string> flags = {}) {
        auto t = std::make_unique<Tunnel>(dir_, testlib::free_port(), 1, std::move(flags),
                                          std::string{}, 0, std::vector<std::string>{}, path);
        EXPECT_TRUE(t->ready());
        return t;
    }

    // ws_client.py against the initiator; its exit code (its log goes to stderr). With
    // `pipeline`, that many rounds of messages go out before any reply is read.
    // With `ca`, the client speaks wss:// and checks the certificate against it.
    int run_client(const Tunnel& t, const std::string& sizes = "0,125,126,65536,1048576",
                   const std::string& path = "/", int pipeline = 0, const std::string& ca = {}) {
        const std::string scheme = ca.empty() ? "ws://" : "wss://";
        Process client(
            {kPython, source_dir() + "/tests/integration/ws_client.py", "--url",
             scheme + "127.0.0.1:" + std::to_string(t.listen_port_) + path, "--sizes", sizes,
             "--timeout", "20", "--pipeline", std::to_string(pipeline), "--ca", ca},
            dir_ + "/ws_client.log");
        const int rc = client.wait(90000).value_or(-1);
        std::fprintf(stderr, "%s", client.log().c_str());
        return rc;
    }

    bool node_ws_installed() {
        Process probe(
            {"/usr/bin/env", "NODE_PATH=/usr/share/nodejs", "node", "-e", "require('ws')"},
            dir_ + "/node-probe.log");
        return probe.wait(30000).value_or(-1) == 0;
    }
    // ws_client.js (node's `ws`) against `url`: text and binary messages up to 16 MiB to the
    // sink, then close code 4003 both ways; its exit code. With `ca`, node trusts that CA too.
    int run_node_client(const std::string& url, const std::string& ca = {}) {
        Process client({"/usr/bin/env", "NODE_PATH=/usr/share/nodejs", "NODE_EXTRA_CA_CERTS=" + ca,
                        "node", source_dir() + "/tests/integration/ws_client.js", url,
                        "0,125,126,65536,16777216", "cluster-a-0,cluster-b-0", "4003"},
                       dir_ + "/node-client.log");
        const int rc = client.wait(90000).value_or(-1);
        std::fprintf(stderr, "%s", client.log().c_str());
        return rc;
    }

    // Sends `request` on a new connection and reads the response head into `head`; the socket,
    // or -1 when nothing connected.
    static int raw_request(uint16_t port, const std::string& request, std::string* head) {
        int fd = testlib::connect_to(port);
        if (fd < 0 || !testlib::write_all(fd, request.data(), request.size())) {
            if (fd >= 0) {
                close(fd);
            }
            return -1;
        }
        char c = 0;
        timeval tv{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while (head->find("\r\n\r\n") == std::string::npos && read(fd, &c, 1) == 1) {
            head->push_back(c);
        }
        return fd;
    }
    // Completes the handshake on a raw socket; -1 unless a 101 came back.
    static int raw_upgrade(uint16_t port, const std::string& request = kUpgrade) {
        std::string head;
        int fd = raw_request(port, request, &head);
        if (fd >= 0 && head.rfind("HTTP/1.1 101", 0) != 0) {
            close(fd);
            return -1;
        }
        return fd;
    }
};

TEST_F(WsE2e, WebSocketClientMessagesRoundTripThroughTheSink) {
    auto t = start_tunnel();
    EXPECT_EQ(run_client(*t), 0);
    EXPECT_GE(t->initiator_metric("ferry_connections_accepted_total"), 1);
    EXPECT_TRUE(testlib::wait_until(
        [&] { return t->initiator_metric("ferry_streams_active") == 0; }, 10000));
}

// node's `ws` (Debian's node-ws): another client nobody here wrote, same checks.
TEST_F(WsE2e, NodeWsClientMessagesRoundTripThroughTheSinkAndItsCloseCodeComesBack) {
    if (!node_ws_installed()) {
        GTEST_SKIP() << "node or node-ws is not installed (tools/setup.sh installs them)";
    }
    auto t = start_tunnel();
    EXPECT_EQ(run_node_client("ws://127.0.0.1:" + std::to_string(t->listen_port_) + "/"), 0);
}

TEST_F(WsE2e, APlainGetGets400WithAReasonAndTheNextClientWorks) {
    auto t = start_tunnel();
    int fd = testlib::connect_to(t->listen_port_);
    ASSERT_GE(fd, 0);
    const std::string get = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ASSERT_TRUE(testlib::write_all(fd, get.data(), get.size()));
    testlib::ReadResult r = testlib::read_all(fd, 10000);
    close(fd);
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 400", 0), 0U) << r.bytes;
    const size_t body = r.bytes.find("\r\n\r\n");
    ASSERT_NE(body, std::string::npos) << r.bytes;
    EXPECT_GT(r.bytes.size(), body + 5) << "no reason in the body: " << r.bytes;
    EXPECT_EQ(r.end, testlib::ReadEnd::Eof);
    EXPECT_EQ(run_client(*t, "0,125"), 0);
}

TEST_F(WsE2e, AnotherPathThanTheListenersGets404) {
    auto t = start_tunnel("/chat");
    int fd = testlib::connect_to(t->listen_port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testlib::write_all(fd, kUpgrade.data(), kUpgrade.size()));  // asks for "/"
    testlib::ReadResult r = testlib::read_all(fd, 10000);
    close(fd);
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 404", 0), 0U) << r.bytes;
    EXPECT_EQ(run_client(*t, "0,125", "/chat"), 0);
}

TEST_F(WsE2e, AnUnmaskedFrameGetsClose1002AndTheNextClientWorks) {
    auto t = start_tunnel();
    int fd = raw_upgrade(t->listen_port_);
    ASSERT_GE(fd, 0);
    const std::string unmasked = "\x81\x05hello";
    ASSERT_TRUE(testlib::write_all(fd, unmasked.data(), unmasked.size()));
    testlib::ReadResult r = testlib::read_all(fd, 10000);
    close(fd);
    EXPECT_EQ(close_code_in(r.bytes), 1002);
    EXPECT_EQ(r.end, testlib::ReadEnd::Eof);
    EXPECT_EQ(run_client(*t, "0,125"), 0);
}

TEST_F(WsE2e, InvalidUtf8InATextFrameGetsClose1007AndTheNextClientWorks) {
    auto t = start_tunnel();
    int fd = raw_upgrade(t->listen_port_);
    ASSERT_GE(fd, 0);
    // A masked text frame with the key 0 (so the payload is as written): 0xff is never UTF-8.
    const std::string bad("\x81\x82\x00\x00\x00\x00\xff\xfe", 8);
    ASSERT_TRUE(testlib::write_all(fd, bad.data(), bad.size()));
    testlib::ReadResult r = testlib::read_all(fd, 10000);
    close(fd);
    EXPECT_EQ(close_code_in(r.bytes), 1007);
    EXPECT_EQ(r.end, testlib::ReadEnd::Eof);
    EXPECT_EQ(run_client(*t, "0,125"), 0);
}

TEST_F(WsE2e, AnOriginOutsideTheAllowedListGets403AndAListedOneIsServed) {
    auto t = start_tunnel("/", {"--ws-allowed-origins", "https://app.example, https://b.example"});
    auto with_origin = [](const std::string& origin) {
        std::string r = kUpgrade;
        r.insert(r.size() - 2, "Origin: " + origin + "\r\n");
        return r;
    };
    std::string head;
    int fd = raw_request(t->listen_port_, with_origin("https://evil.example"), &head);
    ASSERT_GE(fd, 0);
    const testlib::ReadResult rest = testlib::read_all(fd, 10000);
    close(fd);
    EXPECT_EQ(head.rfind("HTTP/1.1 403", 0), 0U) << head;
    EXPECT_NE(rest.bytes.find("--ws-allowed-origins"), std::string::npos) << rest.bytes;
    fd = raw_upgrade(t->listen_port_, with_origin("https://B.example"));
    EXPECT_GE(fd, 0) << "a listed Origin (compared without case) is served";
    close(fd);
    fd = raw_upgrade(t->listen_port_);
    EXPECT_GE(fd, 0) << "a client without Origin (not a browser) is served";
    close(fd);
}

TEST_F(WsE2e, KeepalivePingsGoOutAndASilentClientIsClosedWith1001) {
    auto t = start_tunnel("/", {"--ws-ping-interval", "200ms", "--ws-idle-timeout", "1500ms"});
    int fd = raw_upgrade(t->listen_port_);
    ASSERT_GE(fd, 0);
    // This client never answers: it gets Pings (empty, unmasked) until the idle limit, then a
    // Close 1001 and the end of the connection.
    const testlib::ReadResult r = testlib::read_all(fd, 20000);
    close(fd);
    int pings = 0;
    for (size_t at = r.bytes.find("\x89\x00"); at != std::string::npos;
         at = r.bytes.find("\x89\x00", at + 2)) {
        ++pings;
    }
    EXPECT_GE(pings, 3) << "pings every 200 ms during 1.5 s of silence";
    EXPECT_EQ(close_code_in(r.bytes), 1001);
    EXPECT_EQ(r.end, testlib::ReadEnd::Eof);
}

TEST_F(WsE2e, RepliesBackedUpBehindAClientThatSendsFirstAllComeBackInOrder) {
    auto t = start_tunnel();
    // 200 rounds of 64 KiB + 1 KiB messages (about 13 MiB) sent while nothing is read for 3 s:
    // beyond every window and socket buffer on the way, so the initiator has to stop reading
    // the client until the replies drain; then every reply comes back, in order.
    EXPECT_EQ(run_client(*t, "65536,1024", "/", 200), 0);
    EXPECT_GE(t->initiator_metric("ferry_flow_paused_total"), 1);
}

TEST_F(WsE2e, ARawClientGetsItsPongAndAReply) {
    auto t = start_tunnel();
    int fd = raw_upgrade(t->listen_port_);
    ASSERT_GE(fd, 0);
    // A masked Ping "ping" and a masked Text "hi", both with the key 0.
    const std::string frames("\x89\x84\0\0\0\0ping\x81\x82\0\0\0\0hi", 18);
    ASSERT_TRUE(testlib::write_all(fd, frames.data(), frames.size()));
    std::string got;
    char buf[4096];
    while (got.find("cluster-b-0") == std::string::npos) {
        const ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        got.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    ASSERT_GE(got.size(), 8U) << got;
    EXPECT_EQ(got.substr(0, 6), std::string("\x8a\x04ping", 6));
    EXPECT_EQ(static_cast<uint8_t>(got[6]), 0x81) << "the reply is one unfragmented text frame";
    EXPECT_NE(got.find(R"("message":"hi")"), std::string::npos) << got;
}

// 10,000 WebSockets at once through one tunnel connection, each verified live by one message
// answered by the sink, held open together (ferry-load idle --mode ws raises its own fd limit;
// ferry raises its own).
TEST_F(E2e, TenThousandWebSocketsHeldOpenThroughTheTunnelEachVerifiedLive) {
    Tunnel t(dir_, testlib::free_port(), 1, {}, {}, 0, {}, "/");
    ASSERT_TRUE(t.ready());
    Process load({load_bin(), "idle", "--target", addr(t.listen_port_), "--mode", "ws",
                  "--connections", "10000", "--hold", "1s"},
                 dir_ + "/load.log");
    const int rc = load.wait(240000).value_or(-1);
    std::fprintf(stderr, "%s", load.log().c_str());
    EXPECT_EQ(rc, 0);
    EXPECT_NE(load.log().find("10000/10000 WebSocket connections live"), std::string::npos);
    EXPECT_GE(t.initiator_metric("ferry_connections_accepted_total"), 10000);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
    // Every stream ends once the clients are gone.
    EXPECT_TRUE(testlib::wait_until(
        [&] { return t.terminator_metric("ferry_streams_active") == 0; }, 60000));
}

// wss://: the initiator's own certificate (the demo terminator's: SAN IP 127.0.0.1) towards
// clients, TLS 1.3 with ALPN http/1.1, over an armored tunnel.
class WssE2e : public WsE2e {
  protected:
    std::unique_ptr<Tunnel> start_wss_tunnel() {
        pki_ = make_pki(dir_);
        std::vector<std::string> flags = {"--listen-tls-cert", pki_ + "/terminator.crt",
                                          "--listen-tls-key", pki_ + "/terminator.key"};
        auto t = std::make_unique<Tunnel>(dir_, testlib::free_port(), 1, std::move(flags), pki_, 0,
                                          std::vector<std::string>{}, "wss:/");
        EXPECT_TRUE(t->ready());
        return t;
    }
    std::string pki_;
};

TEST_F(WssE2e, WssClientMessagesRoundTripThroughTheSink) {
    auto t = start_wss_tunnel();
    EXPECT_EQ(run_client(*t, "0,125,126,65536,1048576", "/", 0, pki_ + "/ca.crt"), 0);
    EXPECT_GE(t->initiator_metric("ferry_client_tls_handshakes_total"), 1);
    EXPECT_TRUE(testlib::wait_until(
        [&] { return t->initiator_metric("ferry_streams_active") == 0; }, 10000));
}

TEST_F(WssE2e, NodeWsClientOverWssRoundTripsAndItsCloseCodeComesBack) {
    if (!node_ws_installed()) {
        GTEST_SKIP() << "node or node-ws is not installed (tools/setup.sh installs them)";
    }
    auto t = start_wss_tunnel();
    EXPECT_EQ(run_node_client("wss://127.0.0.1:" + std::to_string(t->listen_port_) + "/",
                              pki_ + "/ca.crt"),
              0);
}

TEST_F(WssE2e, PlainTextOnTheWssPortFailsItsHandshakeAndTheNextClientWorks) {
    auto t = start_wss_tunnel();
    int fd = testlib::connect_to(t->listen_port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testlib::write_all(fd, kUpgrade.data(), kUpgrade.size()));
    testlib::ReadResult r = testlib::read_all(fd, 10000);
    close(fd);
    // A TLS alert at most, never an HTTP answer, and the connection ends.
    EXPECT_EQ(r.bytes.find("HTTP/1.1"), std::string::npos) << r.bytes;
    EXPECT_EQ(r.end, testlib::ReadEnd::Eof);
    EXPECT_TRUE(testlib::wait_until(
        [&] { return t->initiator_metric("ferry_client_tls_handshake_failures_total") >= 1; },
        10000));
    EXPECT_EQ(run_client(*t, "0,125", "/", 0, pki_ + "/ca.crt"), 0);
    EXPECT_TRUE(testlib::wait_until(
        [&] {
            return t->initiator->log().find("WebSocket client TLS handshake failed") !=
                   std::string::npos;
        },
        10000))
        << t->initiator->log();
}

TEST_F(WsE2e, WithoutATunnelTheHandshakeGets503WithAReason) {
    auto t = start_tunnel();
    t->terminator.reset();  // killed: the initiator has no tunnel left
    ASSERT_TRUE(testlib::wait_until(
        [&] { return testlib::http_get(t->admin_i_, "/ready").status != 200; }, 20000));
    int fd = testlib::connect_to(t->listen_port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testlib::write_all(fd, kUpgrade.data(), kUpgrade.size()));
    testlib::ReadResult r = testlib::read_all(fd, 10000);
    close(fd);
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 503", 0), 0U) << r.bytes;
    EXPECT_NE(r.bytes.find("tunnel"), std::string::npos) << r.bytes;
}

}  // namespace
}  // namespace ferry::e2e
