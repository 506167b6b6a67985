// Per-shard free-list allocator for connection-lifetime objects (streams, legs, sessions).
//
// Objects are carved from 64-slot blocks and recycled, so opening a connection does not call
// malloc once the shard has seen its peak, and an idle connection costs only its own slot.
// Single-threaded, like everything a shard owns.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define FERRY_POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define FERRY_POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define FERRY_POOL_POISON(p, n) ((void)(p), (void)(n))
#define FERRY_POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace ferry::base {

template <class T>
class ObjectPool final {
  public:
    ObjectPool() = default;
    ObjectPool(const ObjectPool&) = delete;
    ObjectPool& operator=(const ObjectPool&) = delete;
    ~ObjectPool() = default;  // objects still alive at shard exit are abandoned with their blocks

    template <class... Args>
    [[nodiscard]] T* create(Args&&... args) {
        if (free_ == nullptr) {
            grow();
        }
        Slot* s = free_;
        FERRY_POOL_UNPOISON(s, sizeof(Slot));
        free_ = s->next;
        ++live_;
        return new (s->storage) T(std::forward<Args>(args)...);
    }
    void destroy(T* obj) noexcept {
        obj->~T();
        auto* s = reinterpret_cast<Slot*>(obj);
        s->next = free_;
        free_ = s;
        --live_;
        // A destroyed object's slot is off limits until create() hands it out again, so ASan
        // reports a use after destroy or a double destroy.
        FERRY_POOL_POISON(s, sizeof(Slot));
    }
    [[nodiscard]] size_t live() const noexcept { return live_; }

  private:
    union Slot {
        Slot* next;
        alignas(T) std::byte storage[sizeof(T)];
    };
    static constexpr size_t kBlock = 64;
    void grow() {
        auto block = std::make_unique<Slot[]>(kBlock);
        for (size_t i = 0; i < kBlock; ++i) {
            block[i].next = free_;
            free_ = &block[i];
            FERRY_POOL_POISON(&block[i], sizeof(Slot));
        }
        blocks_.push_back(std::move(block));
    }

    Slot* free_ = nullptr;
    size_t live_ = 0;
    std::vector<std::unique_ptr<Slot[]>> blocks_;
};

}  // namespace ferry::base
