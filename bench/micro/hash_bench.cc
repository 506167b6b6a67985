// xxHash, the checksum ferry-load uses to verify payloads end to end.
#include <benchmark/benchmark.h>
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferry {
namespace {

std::vector<unsigned char> input(size_t n) {
    std::vector<unsigned char> v(n);
    uint32_t x = 2463534242U;
    for (unsigned char& c : v) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<unsigned char>(x);
    }
    return v;
}

void BM_Xxh3_64bits(benchmark::State& state) {
    const std::vector<unsigned char> data = input(static_cast<size_t>(state.range(0)));
    for (auto _ : state) {
        XXH64_hash_t h = XXH3_64bits(data.data(), data.size());
        benchmark::DoNotOptimize(h);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
}
BENCHMARK(BM_Xxh3_64bits)->Arg(1024)->Arg(64 * 1024);

void BM_Xxh64(benchmark::State& state) {
    const std::vector<unsigned char> data = input(static_cast<size_t>(state.range(0)));
    for (auto _ : state) {
        XXH64_hash_t h = XXH64(data.data(), data.size(), 0);
        benchmark::DoNotOptimize(h);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
}
BENCHMARK(BM_Xxh64)->Arg(1024)->Arg(64 * 1024);

}  // namespace
}  // namespace ferry
