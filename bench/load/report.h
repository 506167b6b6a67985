// Results of a ferry-load run and how they are printed: a short human table or one JSON object.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.h"
#include "options.h"
#include "proc_stats.h"

namespace ferry::bench {

// Totals of the measured interval (after warmup), merged over worker threads.
struct RunReport {
    std::string label;
    std::string mode;
    uint32_t connections = 0;
    uint64_t size = 0;
    double duration_s = 0;
    uint64_t messages = 0;  // rr: round trips; bulk: bytes / size
    uint64_t bytes = 0;     // payload bytes received
    uint64_t errors = 0;
    Histogram latency_ns;  // rr only
    ProcSample before;
    ProcSample after;
    bool watched_proxies = false;
};

void print_run_report(const RunReport& report, bool json);

// Escapes a string for a JSON string literal.
[[nodiscard]] std::string json_escape(std::string_view text);

[[nodiscard]] std::string_view run_mode_name(RunMode mode);

}  // namespace ferry::bench
