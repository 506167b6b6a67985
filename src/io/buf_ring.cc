#include "ferry/io/buf_ring.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "ferry/base/check.h"

namespace ferry::io {

BufRing::BufRing(Ring& ring, buf::Pool& pool, uint16_t group, uint32_t entries) noexcept
    : ring_(ring),
      pool_(pool),
      group_(group),
      entries_(entries),
      reserve_(pool.buffer_count() / 8) {
    FERRY_CHECK(entries > 0 && (entries & (entries - 1)) == 0 && entries <= 32768);
    FERRY_CHECK(pool.buffer_count() <= 65536);  // bids are 16 bits
}

BufRing::~BufRing() {
    if (registered_) {
        io_uring_unregister_buf_ring(ring_.raw(), group_);
    }
    if (br_ != nullptr) {
        // Buffers still lent are the ones between the ring's head and tail; the pool is torn
        // down with the shard, so they need no individual return.
        munmap(br_, entries_ * sizeof(io_uring_buf));
    }
}

absl::Status BufRing::init() {
    size_t bytes = entries_ * sizeof(io_uring_buf);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (p == MAP_FAILED) {
        return absl::ResourceExhaustedError("mmap of provided-buffer ring failed");
    }
    br_ = static_cast<io_uring_buf_ring*>(p);
    io_uring_buf_ring_init(br_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(br_);
    reg.ring_entries = entries_;
    reg.bgid = group_;
    int rc = io_uring_register_buf_ring(ring_.raw(), &reg, 0);
    if (rc < 0) {
        return absl::UnavailableError(
            absl::StrFormat("io_uring_register_buf_ring: %s (kernel too old?)", strerror(-rc)));
    }
    registered_ = true;
    refill();
    return absl::OkStatus();
}

buf::Chunk BufRing::take(uint32_t cqe_flags, int32_t len) noexcept {
    FERRY_DCHECK((cqe_flags & IORING_CQE_F_BUFFER) != 0);
    uint32_t bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
    --lent_;
    return pool_.adopt(bid, static_cast<uint32_t>(len));
}

void BufRing::refill() noexcept {
    int added = 0;
    uint32_t index = 0;
    int mask = io_uring_buf_ring_mask(entries_);
    while (lent_ < entries_ && pool_.free_count() > reserve_ && pool_.try_take_index(&index)) {
        io_uring_buf_ring_add(br_, pool_.data(index), pool_.buffer_size(),
                              static_cast<unsigned short>(index), mask, added);
        ++added;
        ++lent_;
    }
    if (added > 0) {
        io_uring_buf_ring_advance(br_, added);
    }
}

}  // namespace ferry::io
