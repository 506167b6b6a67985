// Per-shard slab of fixed-size buffers: where every byte of the data path lands and leaves from.
//
// One contiguous, page-aligned region (so it can be registered with io_uring), cut into `count`
// buffers of `size` bytes. Each buffer carries a refcount: a Chunk owns one reference, and slices
// of the same buffer share it, so bytes received once are sent on from the same memory. A buffer
// returns to the free list when its last Chunk dies. Single-threaded: a Pool belongs to one shard.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "ferry/base/counter.h"

namespace ferry::buf {

class Chunk;

class Pool final {
  public:
    // Fails (FERRY_CHECK) only when the region cannot be mapped: memory is bounded up front.
    Pool(uint32_t buffer_size, uint32_t buffer_count);
    ~Pool();
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    // A whole free buffer with one reference, or an empty Chunk when the pool is exhausted.
    [[nodiscard]] Chunk try_alloc() noexcept;

    // Hands out buffer `index` (already off the free list, e.g. picked by the kernel from a
    // provided-buffer ring) as a Chunk of `length` bytes. Used by io::BufRing.
    [[nodiscard]] Chunk adopt(uint32_t index, uint32_t length) noexcept;
    // Takes a free buffer's index without wrapping it (for io::BufRing to lend to the kernel).
    [[nodiscard]] bool try_take_index(uint32_t* index) noexcept;
    // Gives back an index taken with try_take_index that was never adopted.
    void return_index(uint32_t index) noexcept;

    [[nodiscard]] std::byte* data(uint32_t index) const noexcept {
        return base_ + static_cast<size_t>(index) * buffer_size_;
    }
    [[nodiscard]] uint32_t buffer_size() const noexcept { return buffer_size_; }
    [[nodiscard]] uint32_t buffer_count() const noexcept { return buffer_count_; }
    [[nodiscard]] uint32_t free_count() const noexcept { return free_top_; }
    [[nodiscard]] std::span<std::byte> region() const noexcept {
        return {base_, static_cast<size_t>(buffer_size_) * buffer_count_};
    }
    // Buffers handed out and not yet returned, for metrics.
    [[nodiscard]] const base::Gauge& in_use() const noexcept { return in_use_; }

  private:
    friend class Chunk;
    void ref(uint32_t index) noexcept { ++refs_[index]; }
    void unref(uint32_t index) noexcept;

    std::byte* base_ = nullptr;
    uint32_t buffer_size_;
    uint32_t buffer_count_;
    uint32_t free_top_ = 0;
    std::unique_ptr<uint32_t[]> free_;  // stack of free indices
    std::unique_ptr<uint32_t[]> refs_;  // references per buffer
    base::Gauge in_use_;
};

// A move-only owning view of bytes [offset, offset+length) inside one pool buffer.
//
// Holding a Chunk keeps the whole buffer alive; share() makes another Chunk over a sub-range of
// the same buffer (refcount +1, no copy), which is how a tunnel frame's payload becomes the
// bytes sent to a client. The destructor returns the reference on the owning shard's thread.
// An empty Chunk (pool == nullptr) owns nothing. Chunks never cross shards.
class Chunk final {
  public:
    Chunk() noexcept = default;
    Chunk(Chunk&& other) noexcept
        : pool_(other.pool_), index_(other.index_), offset_(other.offset_), length_(other.length_) {
        other.pool_ = nullptr;
    }
    Chunk& operator=(Chunk&& other) noexcept {
        if (this != &other) {
            reset();
            pool_ = other.pool_;
            index_ = other.index_;
            offset_ = other.offset_;
            length_ = other.length_;
            other.pool_ = nullptr;
        }
        return *this;
    }
    Chunk(const Chunk&) = delete;
    Chunk& operator=(const Chunk&) = delete;
    ~Chunk() { reset(); }

    void reset() noexcept {
        if (pool_ != nullptr) {
            pool_->unref(index_);
            pool_ = nullptr;
        }
    }
    // Another owner of bytes [offset, offset+length) of this view.
    [[nodiscard]] Chunk share(uint32_t offset, uint32_t length) const noexcept;

    [[nodiscard]] bool empty() const noexcept { return pool_ == nullptr; }
    // Null for an empty Chunk (an empty message may travel as one).
    [[nodiscard]] std::byte* data() const noexcept {
        return pool_ == nullptr ? nullptr : pool_->data(index_) + offset_;
    }
    [[nodiscard]] uint32_t size() const noexcept { return pool_ == nullptr ? 0 : length_; }
    [[nodiscard]] uint32_t index() const noexcept { return index_; }
    [[nodiscard]] uint32_t offset() const noexcept { return offset_; }
    // Room after the view inside the buffer (for appending into a freshly allocated chunk).
    [[nodiscard]] uint32_t capacity() const noexcept { return pool_->buffer_size() - offset_; }
    [[nodiscard]] std::span<std::byte> span() const noexcept { return {data(), size()}; }

    void trim_front(uint32_t n) noexcept { offset_ += n, length_ -= n; }
    void set_size(uint32_t n) noexcept { length_ = n; }

  private:
    friend class Pool;
    Chunk(Pool* pool, uint32_t index, uint32_t offset, uint32_t length) noexcept
        : pool_(pool), index_(index), offset_(offset), length_(length) {}

    Pool* pool_ = nullptr;
    uint32_t index_ = 0;
    uint32_t offset_ = 0;
    uint32_t length_ = 0;
};

}  // namespace ferry::buf
