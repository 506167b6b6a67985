#include "ferry/buf/chunk_queue.h"

#include <gtest/gtest.h>

namespace ferry::buf {
namespace {

Chunk sized(Pool& pool, uint32_t n) {
    Chunk c = pool.try_alloc();
    c.set_size(n);
    return c;
}

TEST(ChunkQueue, KeepsOrderAndByteCount) {
    Pool pool(128, 8);
    NodePool nodes;
    ChunkQueue q;
    q.push(nodes, sized(pool, 10));
    q.push(nodes, sized(pool, 20));
    q.push(nodes, sized(pool, 30));
    EXPECT_EQ(q.bytes(), 60u);
    EXPECT_EQ(q.count(), 3u);
    EXPECT_EQ(q.pop(nodes).size(), 10u);
    EXPECT_EQ(q.front().size(), 20u);
    q.clear(nodes);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(pool.free_count(), 8u);
}

TEST(ChunkQueue, ConsumeReleasesWholeChunksAndTrimsThePartialOne) {
    Pool pool(128, 8);
    NodePool nodes;
    ChunkQueue q;
    q.push(nodes, sized(pool, 10));
    q.push(nodes, sized(pool, 20));
    q.consume(nodes, 15);
    EXPECT_EQ(q.count(), 1u);
    EXPECT_EQ(q.bytes(), 15u);
    EXPECT_EQ(q.front().size(), 15u);
    EXPECT_EQ(pool.free_count(), 7u);
    q.consume(nodes, 15);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(pool.free_count(), 8u);
}

TEST(ChunkQueue, NodesAreReusedAcrossManyPushes) {
    Pool pool(64, 4);
    NodePool nodes;
    ChunkQueue q;
    for (int round = 0; round < 10000; ++round) {
        q.push(nodes, sized(pool, 1));
        q.push(nodes, sized(pool, 1));
        Chunk a = q.pop(nodes);
        Chunk b = q.pop(nodes);
    }
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(pool.free_count(), 4u);
}

}  // namespace
}  // namespace ferry::buf
