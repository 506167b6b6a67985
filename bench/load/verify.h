// `ferry-load run --mode verify`: end-to-end correctness check through an echo path. Each
// connection sends a seeded pseudo-random stream in writes of random sizes, reads the echo
// concurrently, and proves it got back exactly what it sent (bytes, count, xxHash64, EOF).
#pragma once

#include "options.h"

namespace ferry::bench {

// Returns 0 only when every connection verified. Prints one line per failed connection
// ("conn 7: mismatch at byte 123456", "conn 3: early EOF after N bytes", "conn 2: connect
// refused") and, when --timeout expires, one line per connection still in progress.
[[nodiscard]] int run_verify(const RunOptions& options);

}  // namespace ferry::bench
