// Limits that hold for the whole process, whatever the number of shards, shared by all of them
// (made once before the shards start; see base::SharedLimit).
#pragma once

#include <cstdint>

#include "ferry/base/shared_limit.h"

namespace ferry::role {

struct ProcessLimits {
    ProcessLimits(uint64_t max_connections, uint64_t max_upstream_connects) noexcept
        : connections(max_connections), upstream_connects(max_upstream_connects) {}

    base::SharedLimit connections;        // --max-connections: local sockets (clients, upstreams)
    base::SharedLimit upstream_connects;  // --max-upstream-connects: connects in flight
};

}  // namespace ferry::role
