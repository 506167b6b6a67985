// gRPC end to end with a real client: grpc_client.py (Debian's python3-grpcio) calls the lane7
// service through an initiator's grpc:// listener; the terminator's built-in sink answers. Each
// case of the client is one test; afterwards no stream may be left open on either side.
#include <gtest/gtest.h>

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
    }
};

TEST_F(GrpcE2e, UnaryCallsOfEverySizeUpTo4MiBComeBackWithTheTrail) { run_case("send"); }

TEST_F(GrpcE2e, ABidiStreamAnswersEveryMessageInOrder) { run_case("stream", {"--count", "1000"}); }

TEST_F(GrpcE2e, AThousandConcurrentUnaryCallsOnOneChannelAreEachAnsweredRight) {
    run_case("concurrent", {"--count", "1000"});
}

TEST_F(GrpcE2e, AnUnknownMethodIsUnimplemented) { run_case("unknown-method"); }

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
