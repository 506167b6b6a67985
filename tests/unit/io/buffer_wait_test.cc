#include "ferry/io/buffer_wait.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace ferry::io {
namespace {

class Waiter final : public BufferWaiter {
  public:
    void retry_after_buffer_wait() noexcept override {
        ++retries;
        if (on_retry) {
            on_retry();
        }
    }
    int retries = 0;
    std::function<void()> on_retry;
};

TEST(BufferWaitList, RetriesEveryParkedWaiterOnce) {
    BufferWaitList list;
    Waiter a;
    Waiter b;
    list.park(&a);
    list.park(&b);
    list.park(&a);  // idempotent
    EXPECT_TRUE(a.waiting_for_buffers());
    list.retry_all();
    EXPECT_EQ(a.retries, 1);
    EXPECT_EQ(b.retries, 1);
    EXPECT_FALSE(a.waiting_for_buffers());
    EXPECT_TRUE(list.empty());
}

TEST(BufferWaitList, AWaiterStillShortParksAgainForTheNextRound) {
    BufferWaitList list;
    Waiter a;
    a.on_retry = [&] { list.park(&a); };
    list.park(&a);
    list.retry_all();
    EXPECT_EQ(a.retries, 1) << "retried once per round, not in a loop";
    EXPECT_TRUE(a.waiting_for_buffers());
    list.retry_all();
    EXPECT_EQ(a.retries, 2);
}

TEST(BufferWaitList, CancelledWaitersAreNeverRetried) {
    BufferWaitList list;
    Waiter a;
    Waiter b;
    list.park(&a);
    list.park(&b);
    list.cancel(&a);
    EXPECT_FALSE(a.waiting_for_buffers());
    list.retry_all();
    EXPECT_EQ(a.retries, 0);
    EXPECT_EQ(b.retries, 1);
}

TEST(BufferWaitList, ARetryMayCancelAnotherWaiterOfTheSameRound) {
    // A session's retry may tear down a transport parked in the same round: the round must skip
    // it and still reach everyone behind it.
    BufferWaitList list;
    Waiter first;
    Waiter doomed;
    Waiter last;
    list.park(&last);
    list.park(&doomed);
    list.park(&first);  // retried first: the list is last-in first-out
    first.on_retry = [&] { list.cancel(&doomed); };
    list.retry_all();
    EXPECT_EQ(first.retries, 1);
    EXPECT_EQ(doomed.retries, 0);
    EXPECT_EQ(last.retries, 1);
    EXPECT_TRUE(list.empty());
}

}  // namespace
}  // namespace ferry::io
