// IoContext: what a shard's socket operations reach for — the ring, the wait list for buffers,
// their counters and knobs. One per shard (the shard's loop::Context extends it); everything
// holding a reference lives on that shard.
#pragma once

#include <cstdint>

#include "ferry/base/counter.h"
#include "ferry/io/buffer_wait.h"
#include "ferry/io/ring.h"

namespace ferry::io {

// Counted by SocketIo; rendered per shard by the admin endpoint.
struct SocketMetrics {
    base::Counter send_zc;          // zero-copy sends issued
    base::Counter send_zc_copied;   // sockets that stopped SEND_ZC because the kernel copied anyway
    base::Counter recv_no_buffers;  // multishot recv ended because the buffer ring ran dry
};

// From the CLI flags (see config::Options).
struct SocketTuning {
    uint32_t zerocopy_threshold = 64 * 1024;  // sends at or above this many bytes use SEND_ZC
    uint64_t connect_timeout_ns = 5'000'000'000;
};

struct IoContext {
    IoContext(Ring& r, BufferWaitList& waits, SocketMetrics& m, const SocketTuning& t) noexcept
        : ring(r), buffer_waits(waits), socket_metrics(m), socket_tuning(t) {}

    Ring& ring;
    BufferWaitList& buffer_waits;
    SocketMetrics& socket_metrics;
    const SocketTuning& socket_tuning;
};

}  // namespace ferry::io
