#include "ferry/buf/pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace ferry::buf {
namespace {

TEST(BufPool, AllocatesEveryBufferOnceThenReportsExhaustion) {
    Pool pool(256, 4);
    std::vector<Chunk> held;
    for (int i = 0; i < 4; ++i) {
        Chunk c = pool.try_alloc();
        ASSERT_FALSE(c.empty());
        EXPECT_EQ(c.size(), 256u);
        held.push_back(std::move(c));
    }
    EXPECT_TRUE(pool.try_alloc().empty());
    EXPECT_EQ(pool.in_use().value(), 4);
    held.clear();
    EXPECT_EQ(pool.free_count(), 4u);
    EXPECT_EQ(pool.in_use().value(), 0);
}

TEST(BufPool, SharedSlicesKeepTheBufferAliveUntilTheLastOwnerDies) {
    Pool pool(128, 1);
    Chunk whole = pool.try_alloc();
    std::memcpy(whole.data(), "hello world", 11);
    Chunk hello = whole.share(0, 5);
    Chunk world = whole.share(6, 5);
    whole.reset();
    EXPECT_EQ(pool.free_count(), 0u);
    EXPECT_EQ(std::memcmp(world.data(), "world", 5), 0);
    hello.reset();
    EXPECT_EQ(pool.free_count(), 0u);
    world.reset();
    EXPECT_EQ(pool.free_count(), 1u);
}

TEST(BufPool, SlicesPointIntoTheSameMemoryWithoutCopying) {
    Pool pool(128, 2);
    Chunk whole = pool.try_alloc();
    Chunk tail = whole.share(10, 20);
    EXPECT_EQ(tail.data(), whole.data() + 10);
    EXPECT_EQ(tail.index(), whole.index());
}

TEST(BufPool, MovedFromChunkOwnsNothing) {
    Pool pool(128, 1);
    Chunk a = pool.try_alloc();
    Chunk b = std::move(a);
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the contract under test
    EXPECT_FALSE(b.empty());
    Chunk c;
    c = std::move(b);
    EXPECT_EQ(pool.free_count(), 0u);
    c.reset();
    EXPECT_EQ(pool.free_count(), 1u);
}

TEST(BufPool, AdoptedIndexReturnsToThePool) {
    Pool pool(128, 2);
    uint32_t idx = 0;
    ASSERT_TRUE(pool.try_take_index(&idx));
    EXPECT_EQ(pool.free_count(), 1u);
    {
        Chunk c = pool.adopt(idx, 40);
        EXPECT_EQ(c.size(), 40u);
    }
    EXPECT_EQ(pool.free_count(), 2u);
    ASSERT_TRUE(pool.try_take_index(&idx));
    pool.return_index(idx);
    EXPECT_EQ(pool.free_count(), 2u);
}

TEST(BufPool, TrimFrontAdvancesTheView) {
    Pool pool(64, 1);
    Chunk c = pool.try_alloc();
    c.set_size(10);
    std::byte* start = c.data();
    c.trim_front(4);
    EXPECT_EQ(c.size(), 6u);
    EXPECT_EQ(c.data(), start + 4);
}

}  // namespace
}  // namespace ferry::buf
