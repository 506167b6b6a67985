// `ferry-load serve`: the upstream test peer (echo, sink or source), one ring per thread, each
// thread with its own SO_REUSEPORT listener on the same port.
#pragma once

#include "options.h"

namespace ferry::bench {

// Binds, prints "listening on HOST:PORT" once every thread is listening, then serves until
// SIGINT or SIGTERM. Returns the process exit code (0 after a signal, 1 on setup failure).
// Expects SIGINT/SIGTERM to be blocked in the calling thread.
[[nodiscard]] int run_serve(const ServeOptions& options);

}  // namespace ferry::bench
