#include "ferry/loop/context.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ferry/loop/context_owner.h"

namespace ferry::loop {
namespace {

// Records the order in which the end of an iteration reaches things.
struct Journal {
    std::vector<std::string> events;
};

class Writer final : public Flushable {
  public:
    Writer(Journal* j, std::string name) : journal_(j), name_(std::move(name)) {}
    void flush() noexcept override {
        journal_->events.push_back("flush " + name_);
        if (then) {
            auto f = std::move(then);
            then = nullptr;
            f();
        }
    }
    std::function<void()> then;

  private:
    Journal* journal_;
    std::string name_;
};

class Waiter final : public io::BufferWaiter {
  public:
    explicit Waiter(Journal* j) : journal_(j) {}
    void retry_after_buffer_wait() noexcept override { journal_->events.push_back("retry"); }

  private:
    Journal* journal_;
};

class Dying final : public Retirable {
  public:
    explicit Dying(Journal* j) : journal_(j) {}
    void retire() noexcept override { journal_->events.push_back("retire"); }

  private:
    Journal* journal_;
};

class LoopContextTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ContextOptions options;
        options.ring.entries = 64;
        options.buffer_size = 4096;
        options.buffer_count = 64;
        options.buffer_ring_entries = 16;
        options.tunnel_buffer_count = 64;
        options.tunnel_buffer_ring_entries = 16;
        absl::StatusOr<std::unique_ptr<ContextOwner>> owner =
            ContextOwner::create(options, metrics_);
        if (!owner.ok()) {
            GTEST_SKIP() << owner.status();
        }
        owner_ = *std::move(owner);
        ctx_ = &owner_->context();
    }

    Metrics metrics_;
    std::unique_ptr<ContextOwner> owner_;
    Context* ctx_ = nullptr;
    Journal journal_;
};

TEST_F(LoopContextTest, FlushesEachQueuedWriterOnceHoweverOftenItWasQueued) {
    Writer a(&journal_, "a");
    ctx_->queue_flush(&a);
    ctx_->queue_flush(&a);
    ctx_->queue_flush(&a);
    EXPECT_TRUE(ctx_->flush_pending());
    end_of_iteration(*ctx_);
    EXPECT_EQ(journal_.events, (std::vector<std::string>{"flush a"}));
    EXPECT_FALSE(ctx_->flush_pending());
    end_of_iteration(*ctx_);
    EXPECT_EQ(journal_.events.size(), 1U) << "nothing queued: nothing flushed";
}

TEST_F(LoopContextTest, OutputQueuedWhileFlushingGoesOutInTheSameIteration) {
    Writer a(&journal_, "a");
    Writer b(&journal_, "b");
    a.then = [&] {
        ctx_->queue_flush(&b);
        ctx_->queue_flush(&a);  // a stream finishing queues its FIN on the same session
    };
    ctx_->queue_flush(&a);
    end_of_iteration(*ctx_);
    ASSERT_EQ(journal_.events.size(), 3U);
    EXPECT_EQ(journal_.events[0], "flush a");
    EXPECT_FALSE(ctx_->flush_pending());
}

TEST_F(LoopContextTest, EndsAnIterationWithFlushThenRetryThenRetire) {
    Writer a(&journal_, "a");
    Waiter w(&journal_);
    Dying d(&journal_);
    ctx_->defer_retire(&d);
    ctx_->buffer_waits.park(&w);
    ctx_->queue_flush(&a);
    end_of_iteration(*ctx_);
    EXPECT_EQ(journal_.events, (std::vector<std::string>{"flush a", "retry", "retire"}));
}

TEST_F(LoopContextTest, TunnelOutputBorrowsFromTheLocalPoolWhenItsOwnIsDry) {
    std::vector<buf::Chunk> held;
    for (buf::Chunk c = ctx_->tunnel_pool.try_alloc(); !c.empty();
         c = ctx_->tunnel_pool.try_alloc()) {
        held.push_back(std::move(c));
    }
    const uint32_t local_free = ctx_->local_pool.free_count();
    ASSERT_GT(local_free, 0U);
    buf::Chunk borrowed = ctx_->alloc_tunnel_chunk();
    ASSERT_FALSE(borrowed.empty());
    EXPECT_EQ(ctx_->local_pool.free_count(), local_free - 1);
}

TEST_F(LoopContextTest, ForgettingPendingWorkDropsItWithoutRunningIt) {
    Writer a(&journal_, "a");
    Waiter w(&journal_);
    Dying d(&journal_);
    ctx_->queue_flush(&a);
    ctx_->buffer_waits.park(&w);
    ctx_->defer_retire(&d);
    ctx_->forget_pending();
    end_of_iteration(*ctx_);
    EXPECT_TRUE(journal_.events.empty());
}

}  // namespace
}  // namespace ferry::loop
