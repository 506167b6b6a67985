// Buffers: pool allocation, zero-copy slicing and the chunk FIFO every stream queues on.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "ferry/buf/chunk_queue.h"
#include "ferry/buf/pool.h"

namespace ferry::buf {
namespace {

void BM_PoolAllocRelease(benchmark::State& state) {
    Pool pool(16384, 1024);
    for (auto _ : state) {
        Chunk c = pool.try_alloc();
        benchmark::DoNotOptimize(c.data());
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_PoolAllocRelease);

// A burst: many buffers out at once, then all back (the free list as a stack under load).
void BM_PoolAllocReleaseBurst(benchmark::State& state) {
    Pool pool(16384, 1024);
    const auto burst = static_cast<size_t>(state.range(0));
    std::vector<Chunk> held;
    held.reserve(burst);
    for (auto _ : state) {
        for (size_t i = 0; i < burst; ++i) {
            held.push_back(pool.try_alloc());
        }
        benchmark::DoNotOptimize(held.data());
        held.clear();
    }
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(burst));
}
BENCHMARK(BM_PoolAllocReleaseBurst)->Arg(64);

void BM_ChunkShare(benchmark::State& state) {
    Pool pool(16384, 16);
    Chunk whole = pool.try_alloc();
    uint32_t offset = 0;
    for (auto _ : state) {
        Chunk slice = whole.share(offset, 1024);
        benchmark::DoNotOptimize(slice.data());
        offset = (offset + 1024) & 0x3fff;
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ChunkShare);

void BM_ChunkQueuePushPop(benchmark::State& state) {
    Pool pool(16384, 16);
    NodePool nodes;
    ChunkQueue queue;
    Chunk whole = pool.try_alloc();
    const auto depth = static_cast<uint32_t>(state.range(0));
    for (auto _ : state) {
        for (uint32_t i = 0; i < depth; ++i) {
            queue.push(nodes, whole.share((i * 64) & 0x3fff, 64));
        }
        while (!queue.empty()) {
            Chunk c = queue.pop(nodes);
            benchmark::DoNotOptimize(c.data());
        }
    }
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(depth));
}
BENCHMARK(BM_ChunkQueuePushPop)->Arg(1)->Arg(64);

}  // namespace
}  // namespace ferry::buf
