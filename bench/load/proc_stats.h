// Samples of /proc taken at the edges of a measured interval: CPU time and resident memory of
// the processes under test (the proxies), CPU time of ferry-load itself, and per-core busy time.
#pragma once

#include <cstdint>
#include <vector>

namespace ferry::bench {

struct ProcSample {
    double proxy_cpu_s = 0;           // utime + stime of the watched pids (all their threads)
    uint64_t proxy_rss_kib = 0;       // VmRSS of the watched pids
    double self_cpu_s = 0;            // ferry-load's own utime + stime
    std::vector<uint64_t> cpu_busy;   // per core, ticks not idle/iowait
    std::vector<uint64_t> cpu_total;  // per core, all ticks
    int missing_pids = 0;             // watched pids that no longer exist
};

[[nodiscard]] ProcSample sample_proc(const std::vector<int>& pids);

// Fraction of each core that was busy between two samples.
[[nodiscard]] std::vector<double> core_busy(const ProcSample& before, const ProcSample& after);

}  // namespace ferry::bench
