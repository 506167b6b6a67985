// The blueprints' demo behaviours end to end: the auto-trigger's log lines, POST /trigger and
// GET /output with the trail of both hops, and failures counted as failures — each over
// WebSocket (the default) and over gRPC (--blueprint=grpc: lane7 Send calls to the built-in
// gRPC sink or a grpc:// upstream).
#include <gtest/gtest.h>

#include <string>

#include "e2e_harness.h"
#include "process.h"

namespace ferry::e2e {
namespace {

// How often `needle` occurs in `hay`.
int count(const std::string& hay, const std::string& needle) {
    int n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

const char kTrail[] = R"("trail":["cluster-a-0","cluster-b-0"])";

TEST_F(E2e, AutoTriggerSendsItsMessagesAndLogsTheExactCounts) {
    Tunnel t(dir_, testlib::free_port(), 2, {"--auto-trigger", "5"});
    ASSERT_TRUE(t.ready());
    ASSERT_TRUE(testlib::wait_until(
        [&] { return t.initiator->log().find("Auto-trigger complete") != std::string::npos; },
        15000));
    const std::string log = t.initiator->log();
    EXPECT_EQ(count(log, "Auto-trigger starting — sending 5 messages\n"), 1) << log;
    EXPECT_EQ(count(log, "Auto-trigger complete — 5/5 messages sent.\n"), 1) << log;
    // Both ends keep the results with the trail of both hops.
    const std::string out_i = testlib::http_get(t.admin_i_, "/output").body;
    EXPECT_EQ(count(out_i, R"("source":"auto-trigger")"), 5) << out_i;
    EXPECT_EQ(count(out_i, R"("ok":true)"), 5) << out_i;
    EXPECT_GE(count(out_i, kTrail), 5) << out_i;
    const std::string out_t = testlib::http_get(t.admin_t_, "/output").body;
    EXPECT_EQ(count(out_t, R"("source":"sink")"), 5) << out_t;
    EXPECT_EQ(count(out_t, kTrail), 5) << out_t;
}

TEST_F(E2e, AutoTriggerCountsRefusedMessagesAsFailedNeverAsSent) {
    // The sink takes no message over 8 bytes: every auto-trigger message is refused.
    Tunnel t(dir_, testlib::free_port(), 1, {"--auto-trigger", "3"}, {}, 1,
             {"--ws-max-message", "8"});
    ASSERT_TRUE(t.ready());
    ASSERT_TRUE(testlib::wait_until(
        [&] { return t.initiator->log().find("Auto-trigger complete") != std::string::npos; },
        15000));
    const std::string log = t.initiator->log();
    EXPECT_EQ(count(log, "Auto-trigger complete — 0/3 messages sent.\n"), 1) << log;
    EXPECT_EQ(count(log, "Auto-trigger message "), 3) << log;
    EXPECT_EQ(count(testlib::http_get(t.admin_i_, "/output").body, R"("ok":false)"), 3);
}

TEST_F(E2e, PostTriggerAnswersWithTheResultAndItsTrail) {
    Tunnel t(dir_, testlib::free_port(), 1);
    ASSERT_TRUE(t.ready());
    const std::string ok = admin_post(t.admin_i_, "/trigger", R"({"hello":"world","n":1})");
    EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << ok;
    EXPECT_NE(ok.find("Content-Type: application/json"), std::string::npos) << ok;
    EXPECT_NE(ok.find(R"("sent":{"hello":"world","n":1})"), std::string::npos) << ok;
    EXPECT_NE(ok.find(kTrail), std::string::npos) << ok;
    // The sink's answer holds the message as it came.
    EXPECT_NE(ok.find(R"("message":"{\"hello\":\"world\",\"n\":1}")"), std::string::npos) << ok;
    // A body that is not JSON, and a GET, get their status and a reason.
    const std::string bad = admin_post(t.admin_i_, "/trigger", "{not json");
    EXPECT_EQ(bad.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0U) << bad;
    EXPECT_NE(bad.find("not valid JSON"), std::string::npos) << bad;
    EXPECT_EQ(testlib::http_get(t.admin_i_, "/trigger").status, 405);
    // It shows in /output too.
    EXPECT_EQ(count(testlib::http_get(t.admin_i_, "/output").body, R"("source":"trigger")"), 1);
}

TEST_F(E2e, PostTriggerWithoutATunnelSays503WithTheReason) {
    // An initiator whose terminator is not there.
    Tunnel t(dir_, testlib::free_port(), 1);
    ASSERT_TRUE(t.ready());
    t.terminator.reset();
    ASSERT_TRUE(testlib::wait_until(
        [&] { return testlib::http_get(t.admin_i_, "/ready").status == 503; }, 10000));
    const std::string r = admin_post(t.admin_i_, "/trigger", "{}");
    EXPECT_EQ(r.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0U) << r;
    EXPECT_NE(r.find("no usable tunnel connection"), std::string::npos) << r;
}

TEST_F(E2e, GrpcBlueprintAutoTriggerSendsLane7CallsAndLogsTheExactCounts) {
    Tunnel t(dir_, testlib::free_port(), 2, {"--auto-trigger", "5", "--blueprint", "grpc"});
    ASSERT_TRUE(t.ready());
    ASSERT_TRUE(testlib::wait_until(
        [&] { return t.initiator->log().find("Auto-trigger complete") != std::string::npos; },
        15000));
    const std::string log = t.initiator->log();
    EXPECT_EQ(count(log, "Auto-trigger starting — sending 5 messages\n"), 1) << log;
    EXPECT_EQ(count(log, "Auto-trigger complete — 5/5 messages sent.\n"), 1) << log;
    const std::string out_i = testlib::http_get(t.admin_i_, "/output").body;
    EXPECT_EQ(count(out_i, R"("source":"auto-trigger")"), 5) << out_i;
    EXPECT_EQ(count(out_i, R"("protocol":"grpc")"), 5) << out_i;
    EXPECT_EQ(count(out_i, R"("ok":true)"), 5) << out_i;
    EXPECT_GE(count(out_i, kTrail), 5) << out_i;
    // The built-in gRPC sink answered them, not the WebSocket one.
    const std::string out_t = testlib::http_get(t.admin_t_, "/output").body;
    EXPECT_EQ(count(out_t, R"("protocol":"grpc")"), 5) << out_t;
    EXPECT_EQ(count(out_t, kTrail), 5) << out_t;
    EXPECT_TRUE(testlib::wait_until(
        [&] {
            return t.initiator_metric("ferry_streams_active") == 0 &&
                   t.terminator_metric("ferry_streams_active") == 0;
        },
        10000));
}

TEST_F(E2e, GrpcBlueprintPostTriggerAnswersWithTheResultAndItsTrail) {
    Tunnel t(dir_, testlib::free_port(), 1, {"--blueprint", "grpc"});
    ASSERT_TRUE(t.ready());
    const std::string ok = admin_post(t.admin_i_, "/trigger", R"({"hello":"world","n":1})");
    EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << ok;
    EXPECT_NE(ok.find(R"("sent":{"hello":"world","n":1})"), std::string::npos) << ok;
    EXPECT_NE(ok.find(kTrail), std::string::npos) << ok;
    EXPECT_NE(ok.find(R"("grpc_status":0)"), std::string::npos) << ok;
    // The Result's payload is the message as it came (the sink's default answer).
    EXPECT_NE(ok.find(R"("message":"{\"hello\":\"world\",\"n\":1}")"), std::string::npos) << ok;
    const std::string out = testlib::http_get(t.admin_i_, "/output").body;
    EXPECT_EQ(count(out, R"("source":"trigger")"), 1) << out;
    EXPECT_EQ(count(out, R"("protocol":"grpc")"), 1) << out;
}

TEST_F(E2e, GrpcBlueprintCountsAFailedUpstreamCallAsFailedWithItsStatus) {
    // The terminator's grpc:// upstream is not there: every call ends UNAVAILABLE.
    const uint16_t nobody = testlib::free_port();
    Tunnel t(dir_, testlib::free_port(), 1, {"--blueprint", "grpc", "--auto-trigger", "2"}, {}, 1,
             {"--upstream", "grpc://" + addr(nobody)});
    ASSERT_TRUE(t.ready());
    ASSERT_TRUE(testlib::wait_until(
        [&] { return t.initiator->log().find("Auto-trigger complete") != std::string::npos; },
        15000));
    const std::string log = t.initiator->log();
    EXPECT_EQ(count(log, "Auto-trigger complete — 0/2 messages sent.\n"), 1) << log;
    EXPECT_EQ(count(log, "failed: grpc-status 14 (UNAVAILABLE)"), 2) << log;
    const std::string r = admin_post(t.admin_i_, "/trigger", "{}");
    EXPECT_EQ(r.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0U) << r;
    EXPECT_NE(r.find(R"("grpc_status":14)"), std::string::npos) << r;
    const std::string out = testlib::http_get(t.admin_i_, "/output").body;
    EXPECT_EQ(count(out, R"("ok":false)"), 3) << out;
    EXPECT_EQ(count(out, R"("ok":true)"), 0) << out;
}

}  // namespace
}  // namespace ferry::e2e
