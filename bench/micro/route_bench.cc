// Endpoint choice by rendezvous hashing (route::RendezvousSet): the per-stream cost of routing.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ferry/route/rendezvous_set.h"

namespace ferry {
namespace {

constexpr size_t kKeyCount = 1024;

std::vector<std::string> keys() {
    std::vector<std::string> out;
    for (size_t i = 0; i < kKeyCount; ++i) {
        out.push_back(absl::StrCat("tenant-", i * 7919, "-session"));
    }
    return out;
}

route::RendezvousSet endpoints(int64_t n, bool weighted) {
    route::RendezvousSet set;
    for (int64_t i = 0; i < n; ++i) {
        const double weight = weighted ? 1.0 + static_cast<double>(i % 4) : 1.0;
        (void)set.add(absl::StrCat("10.1.", i / 250, ".", i % 250 + 1, ":7443"), weight);
    }
    return set;
}

void BM_RendezvousChoose(benchmark::State& state) {
    const route::RendezvousSet set = endpoints(state.range(0), false);
    const std::vector<std::string> k = keys();
    size_t i = 0;
    for (auto _ : state) {
        const route::Choice c = set.choose(k[i++ % kKeyCount]);
        benchmark::DoNotOptimize(c);
    }
}
BENCHMARK(BM_RendezvousChoose)->Arg(3)->Arg(16)->Arg(64);

void BM_RendezvousChooseWeighted(benchmark::State& state) {
    const route::RendezvousSet set = endpoints(state.range(0), true);
    const std::vector<std::string> k = keys();
    size_t i = 0;
    for (auto _ : state) {
        const route::Choice c = set.choose(k[i++ % kKeyCount]);
        benchmark::DoNotOptimize(c);
    }
}
BENCHMARK(BM_RendezvousChooseWeighted)->Arg(16);

// Half the endpoints down: the predicate is what the initiator runs (a flag per peer).
void BM_RendezvousChooseIfHalfUp(benchmark::State& state) {
    const route::RendezvousSet set = endpoints(state.range(0), false);
    const std::vector<std::string> k = keys();
    std::vector<char> up(set.size());
    for (size_t e = 0; e < up.size(); ++e) {
        up[e] = static_cast<char>(e % 2);
    }
    size_t i = 0;
    for (auto _ : state) {
        const route::Choice c =
            set.choose_if(k[i++ % kKeyCount], [&up](size_t e) { return up[e] != 0; });
        benchmark::DoNotOptimize(c);
    }
}
BENCHMARK(BM_RendezvousChooseIfHalfUp)->Arg(16);

}  // namespace
}  // namespace ferry
