// Knobs of the tunnel mux, from the CLI flags (see config::Options).
#pragma once

#include <cstdint>

namespace ferry::tunnel {

struct Tuning {
    uint32_t max_frame_size = 16384;
    uint32_t stream_window = 256 * 1024;
    uint32_t connection_window = 16 * 1024 * 1024;
    uint32_t max_streams = 1024;
    uint32_t batch_bytes = 512 * 1024;  // most bytes one tunnel write carries
    uint64_t ping_interval_ns = 10'000'000'000;
    uint64_t ping_timeout_ns = 30'000'000'000;
    // A peer whose PING stays unanswered for this many ping intervals is gone: the connection
    // fails (its streams reset as Shutdown, retryable) and new streams choose another peer.
    // 0: only ping_timeout_ns applies.
    uint32_t peer_failure_threshold = 3;
    // This process's shards, advertised in HELLO (0: not sent) so an initiator can open enough
    // tunnel connections to reach each of a terminator's shards.
    uint32_t shards = 0;
};

}  // namespace ferry::tunnel
