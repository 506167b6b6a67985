#include "ferry/proto/tunnel/flow_control.h"

#include <gtest/gtest.h>

namespace ferry::proto::tunnel {
namespace {

TEST(TunnelSendWindow, ShrinksWhenDataIsSentAndGrowsWithGrants) {
    SendWindow w(100);
    EXPECT_EQ(w.available(), 100U);
    w.consume(60);
    EXPECT_EQ(w.available(), 40U);
    w.consume(40);
    EXPECT_EQ(w.available(), 0U);
    EXPECT_TRUE(w.grant(25));
    EXPECT_EQ(w.available(), 25U);
}

TEST(TunnelSendWindow, AcceptsAGrantUpToExactly2To31Minus1) {
    SendWindow w(kMaxWindowSize - 10);
    EXPECT_TRUE(w.grant(10));
    EXPECT_EQ(w.available(), kMaxWindowSize);
}

TEST(TunnelSendWindow, RejectsAGrantThatOverflowsTheWindowAndKeepsItUnchanged) {
    SendWindow w(kMaxWindowSize - 10);
    EXPECT_FALSE(w.grant(11));
    EXPECT_EQ(w.available(), kMaxWindowSize - 10);
    SendWindow empty(0);
    EXPECT_TRUE(empty.grant(kMaxWindowSize));
    EXPECT_FALSE(empty.grant(1));
}

TEST(TunnelRecvWindow, AcceptsDataUpToTheGrantedCredit) {
    RecvWindow w(1000);
    EXPECT_TRUE(w.on_received(400));
    EXPECT_TRUE(w.on_received(600));
    EXPECT_EQ(w.available(), 0U);
    EXPECT_EQ(w.buffered(), 1000U);
    EXPECT_TRUE(w.on_received(0));
}

TEST(TunnelRecvWindow, RejectsDataBeyondTheGrantedCreditAndKeepsItUnchanged) {
    RecvWindow w(1000);
    ASSERT_TRUE(w.on_received(999));
    EXPECT_FALSE(w.on_received(2));
    EXPECT_EQ(w.available(), 1U);
    EXPECT_EQ(w.buffered(), 999U);
}

TEST(TunnelRecvWindow, BatchesIncrementsUntilHalfTheWindowIsConsumed) {
    RecvWindow w(1000);
    ASSERT_TRUE(w.on_received(1000));
    EXPECT_EQ(w.on_consumed(300), 0U);
    EXPECT_EQ(w.on_consumed(199), 0U);
    EXPECT_EQ(w.unacked(), 499U);
    EXPECT_EQ(w.available(), 0U);
    EXPECT_EQ(w.on_consumed(1), 500U);  // reaches exactly half
    EXPECT_EQ(w.unacked(), 0U);
    EXPECT_EQ(w.available(), 500U);
    EXPECT_EQ(w.on_consumed(500), 500U);
    EXPECT_EQ(w.available(), 1000U);
    EXPECT_EQ(w.buffered(), 0U);
}

TEST(TunnelRecvWindow, SendsEverythingUnacknowledgedOnceOverTheThreshold) {
    RecvWindow w(1000);
    ASSERT_TRUE(w.on_received(1000));
    EXPECT_EQ(w.on_consumed(100), 0U);
    EXPECT_EQ(w.on_consumed(800), 900U);
    EXPECT_EQ(w.available(), 900U);
    EXPECT_EQ(w.buffered(), 100U);
}

TEST(TunnelRecvWindow, RoundsTheThresholdUpForOddWindows) {
    RecvWindow w(5);
    ASSERT_TRUE(w.on_received(5));
    EXPECT_EQ(w.on_consumed(2), 0U);
    EXPECT_EQ(w.on_consumed(1), 3U);
    RecvWindow one(1);
    ASSERT_TRUE(one.on_received(1));
    EXPECT_EQ(one.on_consumed(1), 1U);
}

TEST(TunnelRecvWindow, ConsumingNothingNeverSendsAnIncrement) {
    RecvWindow zero(0);
    EXPECT_TRUE(zero.on_received(0));
    EXPECT_FALSE(zero.on_received(1));
    EXPECT_EQ(zero.on_consumed(0), 0U);
    RecvWindow w(10);
    EXPECT_EQ(w.on_consumed(0), 0U);
}

TEST(TunnelRecvWindow, HandlesTheLargestWindow) {
    RecvWindow w(kMaxWindowSize);
    ASSERT_TRUE(w.on_received(kMaxWindowSize));
    EXPECT_FALSE(w.on_received(1));
    EXPECT_EQ(w.on_consumed(kMaxWindowSize / 2), 0U);
    EXPECT_EQ(w.on_consumed(1), kMaxWindowSize / 2 + 1);
    EXPECT_EQ(w.on_consumed(kMaxWindowSize / 2), 0U);
    EXPECT_EQ(w.available(), kMaxWindowSize / 2 + 1);
}

TEST(TunnelRecvWindow, AnUnsentIncrementIsOwedAndTakenWholeLater) {
    RecvWindow w(100);
    ASSERT_TRUE(w.on_received(80));
    const uint32_t inc = w.on_consumed(60);
    ASSERT_EQ(inc, 60U);
    // The WINDOW frame could not be written: the peer still holds only the old credit.
    w.unsend(inc);
    EXPECT_EQ(w.available(), 20U);
    EXPECT_EQ(w.unacked(), 60U);
    EXPECT_EQ(w.on_consumed(10), 70U) << "more consumption carries the owed credit with it";
    w.unsend(70);
    EXPECT_EQ(w.take_unacked(), 70U);
    EXPECT_EQ(w.available(), 90U);
    EXPECT_EQ(w.unacked(), 0U);
    EXPECT_EQ(w.take_unacked(), 0U);
    EXPECT_EQ(w.buffered(), 10U);
}

}  // namespace
}  // namespace ferry::proto::tunnel
