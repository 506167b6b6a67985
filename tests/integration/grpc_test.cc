// gRPC end to end with a real client: grpc_client.py (Debian's python3-grpcio) calls the lane7
// service through an initiator's grpc:// listener; the terminator's built-in sink answers. Each
// case of the client is one test; afterwards no stream may be left open on either side.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>
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

// The value of one series (`name{labels}`) in a /metrics body, or -1 when it is not there.
int64_t sample(const std::string& body, const std::string& series) {
    const std::string prefix = series + " ";
    for (size_t at = body.find(prefix); at != std::string::npos; at = body.find(prefix, at + 1)) {
        if (at == 0 || body[at - 1] == '\n') {
            return std::atoll(body.c_str() + at + prefix.size());
        }
    }
    return -1;
}

class GrpcE2e : public E2e {
  protected:
    // Runs one case of grpc_client.py against a fresh tunnel pair and checks that every stream
    // it opened is closed again at both ends.
    void run_case(const std::string& name, std::vector<std::string> extra = {}) {
        // The upstream port is never dialled: gRPC streams go to the terminator's sink.
        Tunnel t(dir_, testlib::free_port(), 1, {}, {}, 0, {}, "grpc:");
        ASSERT_TRUE(t.ready());
        std::vector<std::string> args = {
            kPython,          source_dir() + "/tests/integration/grpc_client.py",
            "--port",         std::to_string(t.listen_port_),
            "--proto-dir",    source_dir() + "/proto",
            "--case",         name,
            "--expect-trail", "cluster-a-0, cluster-b-0",
            "--timeout",      "60"};
        args.insert(args.end(), extra.begin(), extra.end());
        Process client(args, dir_ + "/grpc_client.log");
        const int rc = client.wait(240000).value_or(-1);
        const std::string log = client.log();
        EXPECT_EQ(rc, 0) << log;
        std::fprintf(stderr, "%s", log.c_str());

        EXPECT_TRUE(testlib::wait_until(
            [&] { return t.initiator_metric("ferry_streams_active") == 0; }, 10000))
            << t.initiator_metric("ferry_streams_active");
        EXPECT_TRUE(testlib::wait_until(
            [&] { return t.terminator_metric("ferry_streams_active") == 0; }, 10000))
            << t.terminator_metric("ferry_streams_active");
        EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
        EXPECT_TRUE(t.initiator->running());
        EXPECT_TRUE(t.terminator->running());
        metrics_i_ = testlib::http_get(t.admin_i_, "/metrics").body;
        metrics_t_ = testlib::http_get(t.admin_t_, "/metrics").body;
    }

    std::string metrics_i_;  // both sides' /metrics once the case's calls are over
    std::string metrics_t_;
};

TEST_F(GrpcE2e, UnaryCallsOfEverySizeUpTo4MiBComeBackWithTheTrail) {
    run_case("send");
    // Seven calls, one message each way, counted alike at the listener and the sink.
    for (const auto& [body, side] : {std::pair{&metrics_i_, std::string("listener")},
                                     std::pair{&metrics_t_, std::string("sink")}}) {
        const std::string s = "{side=\"" + side + "\"";
        EXPECT_EQ(sample(*body, "ferry_grpc_calls_total" + s + ",code=\"OK\"}"), 7) << *body;
        EXPECT_EQ(testlib::metric_sum(*body, "ferry_grpc_calls_total"), 7) << *body;
        EXPECT_EQ(sample(*body, "ferry_grpc_calls_active" + s + "}"), 0) << *body;
        EXPECT_EQ(sample(*body, "ferry_grpc_messages_total" + s + ",direction=\"in\"}"), 7);
        EXPECT_EQ(sample(*body, "ferry_grpc_messages_total" + s + ",direction=\"out\"}"), 7);
        EXPECT_EQ(sample(*body, "ferry_grpc_call_duration_seconds_count" + s + "}"), 7);
        EXPECT_EQ(sample(*body, "ferry_grpc_call_duration_seconds_bucket" + s + ",le=\"+Inf\"}"),
                  7);
        EXPECT_NE(body->find("# TYPE ferry_grpc_call_duration_seconds histogram\n"),
                  std::string::npos);
    }
    // Each side exports only its own.
    EXPECT_EQ(metrics_i_.find("side=\"sink\""), std::string::npos);
    EXPECT_EQ(metrics_t_.find("side=\"listener\""), std::string::npos);
}

TEST_F(GrpcE2e, ABidiStreamAnswersEveryMessageInOrder) { run_case("stream", {"--count", "1000"}); }

TEST_F(GrpcE2e, AThousandConcurrentUnaryCallsOnOneChannelAreEachAnsweredRight) {
    run_case("concurrent", {"--count", "1000"});
}

TEST_F(GrpcE2e, AnUnknownMethodIsUnimplemented) {
    run_case("unknown-method");
    EXPECT_GE(
        sample(metrics_i_, "ferry_grpc_calls_total{side=\"listener\",code=\"UNIMPLEMENTED\"}"), 1)
        << metrics_i_;
    EXPECT_GE(sample(metrics_t_, "ferry_grpc_calls_total{side=\"sink\",code=\"UNIMPLEMENTED\"}"), 1)
        << metrics_t_;
}

TEST_F(GrpcE2e, AMessageOverTheLimitIsResourceExhaustedAndTheChannelGoesOn) {
    run_case("oversize");
}

TEST_F(GrpcE2e, ACallPastItsDeadlineEndsWithDeadlineExceeded) { run_case("deadline"); }

// --tunnel-transport=grpc: a stock gRPC client that reaches the terminator's tunnel port at any
// other method hears UNIMPLEMENTED, and the tunnel carries on.
TEST_F(E2e, GrpcTunnelPortAnswersAStockGrpcClientWithUnimplemented) {
    std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {"--tunnel-transport", "grpc"}, pki);
    ASSERT_TRUE(t.ready());
    Process probe({kPython, source_dir() + "/tests/integration/grpc_tunnel_probe.py", "--port",
                   std::to_string(t.tunnel_port_)},
                  dir_ + "/grpc_tunnel_probe.log");
    EXPECT_EQ(probe.wait(60000).value_or(-1), 0) << probe.log();
    EXPECT_EQ(t.terminator_metric("ferry_grpc_tunnel_failures_total"), 1);
    EXPECT_EQ(verify(t.listen_port_, 4, "256KiB"), 0);
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
    EXPECT_TRUE(t.terminator->running());
}

}  // namespace
}  // namespace ferry::e2e
