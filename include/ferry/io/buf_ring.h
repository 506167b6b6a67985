// Provided-buffer ring: pool buffers lent to the kernel so multishot recv picks one per read.
//
// A buffer in the ring belongs to the kernel; a recv CQE hands it back (bid = pool index) and
// take() wraps it in a Chunk. Idle sockets hold no buffer: one is consumed only when bytes arrive.
// refill() lends free pool buffers again; it runs once per loop iteration, not per CQE.
#pragma once

#include <liburing.h>

#include <cstdint>

#include "absl/status/status.h"
#include "ferry/buf/pool.h"
#include "ferry/io/ring.h"

namespace ferry::io {

class BufRing final {
  public:
    BufRing(Ring& ring, buf::Pool& pool, uint16_t group, uint32_t entries) noexcept;
    ~BufRing();
    BufRing(const BufRing&) = delete;
    BufRing& operator=(const BufRing&) = delete;

    // Maps and registers the ring and fills it; fails when the kernel lacks provided-buffer rings.
    [[nodiscard]] absl::Status init();
    // The buffer a CQE with IORING_CQE_F_BUFFER names, holding `len` bytes.
    [[nodiscard]] buf::Chunk take(uint32_t cqe_flags, int32_t len) noexcept;
    // Lends free pool buffers to the kernel until the ring is full or the pool keeps its reserve.
    void refill() noexcept;

    [[nodiscard]] uint16_t group() const noexcept { return group_; }
    [[nodiscard]] uint32_t lent() const noexcept { return lent_; }
    // True when the ring ran empty since the last call (recvs ended with ENOBUFS).
    [[nodiscard]] uint32_t entries() const noexcept { return entries_; }

  private:
    Ring& ring_;
    buf::Pool& pool_;
    io_uring_buf_ring* br_ = nullptr;
    uint16_t group_;
    uint32_t entries_;
    uint32_t lent_ = 0;
    // Buffers the pool keeps out of the ring for sends and control frames.
    uint32_t reserve_;
    bool registered_ = false;
};

}  // namespace ferry::io
