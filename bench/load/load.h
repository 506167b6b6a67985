// `ferry-load run --mode rr|bulk`: closed-loop request/response against an echo server, or
// reading as fast as possible from a source server; measures a post-warmup interval.
#pragma once

#include "options.h"

namespace ferry::bench {

// Connects every connection (concurrently, paced by --connect-rate), starts the warmup once all
// have connected or failed, measures, prints the report. Returns the exit code: 0 when the
// interval measured at least one message, 1 otherwise.
[[nodiscard]] int run_load(const RunOptions& options);

}  // namespace ferry::bench
