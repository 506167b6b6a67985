#include "ferry/buf/pool.h"

#include <sys/mman.h>

#include "ferry/base/check.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FERRY_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FERRY_ASAN 1
#endif
#ifdef FERRY_ASAN
#include <sanitizer/asan_interface.h>
#define FERRY_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define FERRY_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define FERRY_POISON(p, n) ((void)(p), (void)(n))
#define FERRY_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace ferry::buf {

Pool::Pool(uint32_t buffer_size, uint32_t buffer_count)
    : buffer_size_(buffer_size),
      buffer_count_(buffer_count),
      free_(new uint32_t[buffer_count]),
      refs_(new uint32_t[buffer_count]()) {
    FERRY_CHECK(buffer_size >= 64 && buffer_count > 0);
    size_t bytes = static_cast<size_t>(buffer_size) * buffer_count;
    // MAP_NORESERVE: untouched buffers cost no resident memory, so a large pool is only address
    // space until traffic actually lands in it.
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    FERRY_CHECK(p != MAP_FAILED);
    base_ = static_cast<std::byte*>(p);
    // Lowest indices on top of the stack, so a lightly loaded shard keeps reusing the same
    // (already resident, cache-warm) buffers.
    for (uint32_t i = 0; i < buffer_count; ++i) {
        free_[i] = buffer_count - 1 - i;
    }
    free_top_ = buffer_count;
    FERRY_POISON(base_, bytes);
}

Pool::~Pool() {
    size_t bytes = static_cast<size_t>(buffer_size_) * buffer_count_;
    FERRY_UNPOISON(base_, bytes);
    munmap(base_, bytes);
}

bool Pool::try_take_index(uint32_t* index) noexcept {
    if (free_top_ == 0) {
        return false;
    }
    *index = free_[--free_top_];
    FERRY_DCHECK(refs_[*index] == 0);
    FERRY_UNPOISON(data(*index), buffer_size_);
    in_use_.add(1);
    return true;
}

void Pool::return_index(uint32_t index) noexcept {
    FERRY_DCHECK(refs_[index] == 0);
    FERRY_POISON(data(index), buffer_size_);
    free_[free_top_++] = index;
    in_use_.add(-1);
}

Chunk Pool::try_alloc() noexcept {
    uint32_t index = 0;
    if (!try_take_index(&index)) {
        return {};
    }
    refs_[index] = 1;
    return Chunk(this, index, 0, buffer_size_);
}

Chunk Pool::adopt(uint32_t index, uint32_t length) noexcept {
    FERRY_DCHECK(index < buffer_count_ && refs_[index] == 0);
    refs_[index] = 1;
    return Chunk(this, index, 0, length);
}

void Pool::unref(uint32_t index) noexcept {
    FERRY_DCHECK(refs_[index] > 0);
    if (--refs_[index] == 0) {
        FERRY_POISON(data(index), buffer_size_);
        free_[free_top_++] = index;
        in_use_.add(-1);
    }
}

Chunk Chunk::share(uint32_t offset, uint32_t length) const noexcept {
    FERRY_DCHECK(pool_ != nullptr && offset + length <= length_);
    pool_->ref(index_);
    return Chunk(pool_, index_, offset_ + offset, length);
}

}  // namespace ferry::buf
