// ContextOwner: builds and owns everything a shard's loop::Context refers to — the ring, the two
// buffer pools with their provided-buffer rings, the node pool — and tears it down in the right
// order (the Context first, the ring last). The shard and the tests build contexts this one way.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "ferry/buf/chunk_queue.h"
#include "ferry/buf/pool.h"
#include "ferry/io/buf_ring.h"
#include "ferry/io/io_context.h"
#include "ferry/io/ring.h"
#include "ferry/loop/context.h"

namespace ferry::loop {

// Sizes of a shard's ring and pools, and its socket knobs (from the CLI flags, see
// config::validate()).
struct ContextOptions {
    io::RingOptions ring;
    uint32_t buffer_size = 65536;
    uint32_t buffer_count = 512;  // local-socket pool
    uint32_t buffer_ring_entries = 256;
    uint32_t tunnel_buffer_count = 1024;
    uint32_t tunnel_buffer_ring_entries = 512;
    io::SocketTuning socket;
};

class ContextOwner final {
  public:
    // Fails when the ring cannot be set up or the kernel refuses a provided-buffer ring.
    // `metrics` must outlive the owner.
    [[nodiscard]] static absl::StatusOr<std::unique_ptr<ContextOwner>> create(
        const ContextOptions& options, Metrics& metrics);
    ~ContextOwner();
    ContextOwner(const ContextOwner&) = delete;
    ContextOwner& operator=(const ContextOwner&) = delete;

    [[nodiscard]] Context& context() noexcept { return *ctx_; }

  private:
    ContextOwner() = default;

    // Declaration order is teardown order, reversed: the ring outlives what is registered with it.
    std::unique_ptr<io::Ring> ring_;
    std::unique_ptr<buf::Pool> local_pool_;
    std::unique_ptr<buf::Pool> tunnel_pool_;
    buf::NodePool nodes_;
    std::unique_ptr<io::BufRing> local_bufs_;
    std::unique_ptr<io::BufRing> tunnel_bufs_;
    io::SocketTuning socket_tuning_;
    std::unique_ptr<Context> ctx_;
};

}  // namespace ferry::loop
