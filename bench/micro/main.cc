// Entry point of ferry-microbench; the benchmarks register themselves in the other files.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
