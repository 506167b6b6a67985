// `ferry-load idle`: holds many quiet connections open so the memory a proxy spends per idle
// connection can be measured (optionally after sending a few bytes on each).
#pragma once

#include "options.h"

namespace ferry::bench {

// Opens the connections (paced), optionally sends --send-first bytes on each, holds them for
// --hold while watching for closes, and reports how many stayed established. With --proxy-pids
// it reports the resident memory of those processes before connecting and at the end of the
// hold. Returns 0 when every connection was still established at the end.
[[nodiscard]] int run_idle(const IdleOptions& options);

}  // namespace ferry::bench
