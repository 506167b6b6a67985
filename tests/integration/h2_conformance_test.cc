// RFC 9113 conformance of the initiator's HTTP/2 server (grpc:// listeners), in the spirit of
// h2spec: h2_conformance.py sends hand-built frames (valid and invalid) over raw sockets and
// checks every answer against the RFC, one connection per case, then checks that a fresh
// connection still gets a valid lane7 answer from the terminator's built-in sink.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "e2e_harness.h"
#include "process.h"

namespace ferry::e2e {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

std::string source_dir() {
    const char* src = std::getenv("FERRY_SOURCE_DIR");
    return src != nullptr ? src : ".";
}

class H2ConformanceE2e : public E2e {};

TEST_F(H2ConformanceE2e, EveryCaseGetsTheAnswerOfRfc9113AndTheServerGoesOn) {
    Tunnel t(dir_, testlib::free_port(), 1, {}, {}, 0, {}, "grpc:");
    ASSERT_TRUE(t.ready());
    Process client({kPython, source_dir() + "/tests/integration/h2_conformance.py", "--port",
                    std::to_string(t.listen_port_),
                    // Slack for a loaded machine and a debug build.
                    "--timeout-scale", "3"},
                   dir_ + "/h2_conformance.log");
    const int rc = client.wait(600000).value_or(-1);
    const std::string log = client.log();
    EXPECT_EQ(rc, 0) << log;
    EXPECT_NE(log.find(" 0 failed"), std::string::npos) << log;
    std::fprintf(stderr, "%s", log.c_str());

    // Every call the cases opened, refused or reset is gone at both ends.
    EXPECT_TRUE(
        testlib::wait_until([&] { return t.initiator_metric("ferry_streams_active") == 0; }, 10000))
        << t.initiator_metric("ferry_streams_active");
    EXPECT_TRUE(testlib::wait_until(
        [&] { return t.terminator_metric("ferry_streams_active") == 0; }, 10000))
        << t.terminator_metric("ferry_streams_active");
    EXPECT_EQ(t.initiator_metric("ferry_tunnel_disconnects_total"), 0);
    EXPECT_TRUE(t.initiator->running());
    EXPECT_TRUE(t.terminator->running());
}

}  // namespace
}  // namespace ferry::e2e
