// End-to-end tests of the terminator's grpc:// upstream: real ferry processes, a grpc:// listener
// at the initiator and a real gRPC server behind the terminator (grpc_echo_server.py), called by
// a real client (grpc_upstream_check.py), both on Debian's python3-grpcio.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
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

class GrpcUpstreamE2e : public E2e {
  protected:
    void SetUp() override {
        E2e::SetUp();
        Process probe({kPython, "-c", "import grpc"}, dir_ + "/probe.log");
        if (probe.wait(30000).value_or(-1) != 0) {
            GTEST_SKIP() << "python3-grpcio is not installed (tools/setup.sh installs it)";
        }
    }

    // grpc_echo_server.py on `port`, once it takes connections; with `pki`, over TLS with the
    // demo terminator certificate (SAN 127.0.0.1 and localhost).
    std::unique_ptr<Process> start_server(uint16_t port, const std::string& pki = {}) {
        std::vector<std::string> args = {kPython,
                                         source_dir() + "/tests/integration/grpc_echo_server.py",
                                         "--port", std::to_string(port)};
        if (!pki.empty()) {
            args.insert(args.end(), {"--tls-cert", pki + "/terminator.crt", "--tls-key",
                                     pki + "/terminator.key"});
        }
        auto p = std::make_unique<Process>(args, dir_ + "/grpc_server.log");
        EXPECT_TRUE(wait_listening(port, 20000));
        return p;
    }
    void TearDown() override {
        initiator_.reset();
        terminator_.reset();
        E2e::TearDown();
    }

    // A terminator whose gRPC upstream is 127.0.0.1:`upstream_port`, and an initiator with a
    // grpc:// listener in front of it. With `pki`, the tunnel is armored (mutual TLS) and the
    // listener is grpcs:// (the terminator's certificate, ALPN h2). With `upstream_tls` the
    // upstream is grpcs://, its certificate checked against `upstream_ca` (empty: the system's
    // trust store).
    void start_pair(uint16_t upstream_port, const std::string& pki = {}, bool upstream_tls = false,
                    const std::string& upstream_ca = {}) {
        const uint16_t tunnel_port = testlib::free_port();
        std::vector<std::string> t = {ferry_bin(),
                                      "terminator",
                                      "--listen-tunnel",
                                      addr(tunnel_port),
                                      "--upstream",
                                      (upstream_tls ? "grpcs://" : "grpc://") + addr(upstream_port),
                                      "--admin",
                                      addr(admin_t_),
                                      "--shards",
                                      "1",
                                      "--cpus",
                                      "none",
                                      "--node-name",
                                      "cluster-b-0",
                                      "--connect-timeout",
                                      "2s"};
        std::vector<std::string> i = {
            ferry_bin(),      "initiator",
            "--listen",       (pki.empty() ? "grpc://" : "grpcs://") + addr(listen_port_),
            "--peer",         addr(tunnel_port),
            "--admin",        addr(admin_i_),
            "--shards",       "1",
            "--cpus",         "none",
            "--node-name",    "cluster-a-0",
            "--auto-trigger", "0"};
        if (pki.empty()) {
            t.insert(t.end(), {"--tunnel-transport", "plain"});
            i.insert(i.end(), {"--tunnel-transport", "plain"});
        } else {
            const std::vector<std::string> tt = tls_flags(pki, "terminator");
            const std::vector<std::string> it = tls_flags(pki, "initiator");
            t.insert(t.end(), tt.begin(), tt.end());
            i.insert(i.end(), it.begin(), it.end());
            i.insert(i.end(), {"--listen-tls-cert", pki + "/terminator.crt", "--listen-tls-key",
                               pki + "/terminator.key"});
            tls_ca_ = pki + "/ca.crt";
        }
        if (!upstream_ca.empty()) {
            t.insert(t.end(), {"--upstream-tls-ca", upstream_ca});
        }
        terminator_ = std::make_unique<Process>(t, dir_ + "/terminator.log");
        initiator_ = std::make_unique<Process>(i, dir_ + "/initiator.log");
        ASSERT_TRUE(testlib::wait_until(
            [&] { return testlib::http_get(admin_i_, "/ready").status == 200; }, 20000));
    }

    // grpc_upstream_check.py with these cases against the initiator; its exit code.
    int run_client(const std::vector<std::string>& cases) {
        std::vector<std::string> args = {
            kPython,          source_dir() + "/tests/integration/grpc_upstream_check.py",
            "--port",         std::to_string(listen_port_),
            "--expect-trail", "cluster-a-0, cluster-b-0"};
        for (const std::string& c : cases) {
            args.insert(args.end(), {"--case", c});
        }
        if (!tls_ca_.empty()) {
            args.insert(args.end(), {"--tls-ca", tls_ca_});
        }
        Process client(args, dir_ + "/grpc_client.log");
        const int rc = client.wait(300000).value_or(-1);
        std::fprintf(stderr, "%s", client.log().c_str());
        return rc;
    }

    int64_t metric(uint16_t admin, const std::string& name) {
        return testlib::metric_sum(testlib::http_get(admin, "/metrics").body, name);
    }

    uint16_t listen_port_ = testlib::free_port();
    uint16_t admin_i_ = testlib::free_port();
    uint16_t admin_t_ = testlib::free_port();
    std::string tls_ca_;
    std::unique_ptr<Process> terminator_;
    std::unique_ptr<Process> initiator_;
};

TEST_F(GrpcUpstreamE2e, AGrpcCppClientMakesEveryKindOfCallThroughTheArmoredTunnel) {
    const char* client_bin = std::getenv("FERRY_GRPC_CPP_CLIENT");
    if (client_bin == nullptr) {
        GTEST_SKIP() << "FERRY_GRPC_CPP_CLIENT is not set (meson test sets it)";
    }
    const uint16_t port = testlib::free_port();
    auto server = start_server(port);
    // An armored tunnel and a grpcs:// listener, whose certificate the client checks.
    start_pair(port, make_pki(dir_));
    Process client({client_bin, "127.0.0.1:" + std::to_string(listen_port_),
                    "cluster-a-0, cluster-b-0", tls_ca_},
                   dir_ + "/grpc_cpp_client.log");
    const int rc = client.wait(300000).value_or(-1);
    std::fprintf(stderr, "%s", client.log().c_str());
    EXPECT_EQ(rc, 0) << "gRPC C++ client: unary 0 B..4 MiB with -bin metadata, 1,000-message "
                        "streams each way, status, UNIMPLEMENTED, deadline, cancel, 1,000 "
                        "concurrent calls";
}

TEST_F(GrpcUpstreamE2e, EveryKindOfCallCrossesToARealServerAndBack) {
    const uint16_t port = testlib::free_port();
    auto server = start_server(port);
    start_pair(port);
    // Unary with 0 B to 4 MiB and metadata (text and -bin) both ways; server, client and bidi
    // streaming with 1,000 messages; the server's status and message; UNIMPLEMENTED from the
    // server; a deadline; a cancellation the server sees; 1,000 calls in flight on one channel.
    EXPECT_EQ(run_client({"unary", "server-stream", "client-stream", "bidi", "status",
                          "unimplemented", "deadline", "cancel", "concurrent"}),
              0);
    // Every call is over on both sides; the upstream connections stay for the next calls.
    EXPECT_TRUE(testlib::wait_until(
        [&] {
            return metric(admin_i_, "ferry_streams_active") == 0 &&
                   metric(admin_t_, "ferry_streams_active") == 0 &&
                   metric(admin_i_, "ferry_connections_active") == 0;
        },
        10000));
    const int64_t upstream_connections = metric(admin_t_, "ferry_connections_active");
    EXPECT_GE(upstream_connections, 1);
    EXPECT_LE(upstream_connections, 4);
}

TEST_F(GrpcUpstreamE2e, AGrpcsListenerAndAnArmoredTunnelCarryTheSameCalls) {
    const uint16_t port = testlib::free_port();
    auto server = start_server(port);
    start_pair(port, make_pki(dir_));
    EXPECT_EQ(run_client({"unary", "bidi", "cancel", "concurrent"}), 0);
    EXPECT_TRUE(testlib::wait_until(
        [&] {
            return metric(admin_i_, "ferry_streams_active") == 0 &&
                   metric(admin_t_, "ferry_streams_active") == 0;
        },
        10000));
}

TEST_F(GrpcUpstreamE2e, AGrpcsUpstreamCarriesEveryKindOfCallOverTls) {
    const std::string pki = make_pki(dir_);
    const uint16_t port = testlib::free_port();
    auto server = start_server(port, pki);
    start_pair(port, {}, /*upstream_tls=*/true, pki + "/ca.crt");
    EXPECT_EQ(run_client({"unary", "server-stream", "client-stream", "bidi", "status",
                          "unimplemented", "cancel", "concurrent"}),
              0);
    EXPECT_TRUE(testlib::wait_until(
        [&] {
            return metric(admin_i_, "ferry_streams_active") == 0 &&
                   metric(admin_t_, "ferry_streams_active") == 0;
        },
        10000));
    // The upstream connections are TLS ones (counted with the terminator's client TLS).
    EXPECT_GE(metric(admin_t_, "ferry_client_tls_handshakes_total"), 1);
    EXPECT_EQ(metric(admin_t_, "ferry_upstream_connect_errors_total"), 0);
}

TEST_F(GrpcUpstreamE2e, AGrpcsUpstreamWithAnUntrustedCertificateIsUnavailable) {
    const std::string pki = make_pki(dir_);
    const uint16_t port = testlib::free_port();
    auto server = start_server(port, pki);
    // No --upstream-tls-ca: the system's trust store does not know the demo CA.
    start_pair(port, {}, /*upstream_tls=*/true);
    EXPECT_EQ(run_client({"unavailable"}), 0);
    EXPECT_GE(metric(admin_t_, "ferry_upstream_connect_errors_total"), 1);
    EXPECT_EQ(metric(admin_t_, "ferry_client_tls_handshakes_total"), 0);
}

TEST_F(GrpcUpstreamE2e, AnUnreachableServerGivesUnavailableAndALaterOneIsUsed) {
    const uint16_t port = testlib::free_port();  // nothing listens there yet
    start_pair(port);
    EXPECT_EQ(run_client({"unavailable"}), 0);
    EXPECT_GE(metric(admin_t_, "ferry_upstream_connect_errors_total"), 1);
    // The upstream side counts each call by the status it ended with.
    const std::string body = testlib::http_get(admin_t_, "/metrics").body;
    EXPECT_NE(body.find("ferry_grpc_calls_total{side=\"upstream\",code=\"UNAVAILABLE\"} "),
              std::string::npos);
    EXPECT_EQ(body.find("ferry_grpc_calls_total{side=\"upstream\",code=\"UNAVAILABLE\"} 0\n"),
              std::string::npos)
        << body;
    // The server comes up: the next calls reach it.
    auto server = start_server(port);
    EXPECT_EQ(run_client({"unary", "bidi"}), 0);
}

}  // namespace
}  // namespace ferry::e2e
