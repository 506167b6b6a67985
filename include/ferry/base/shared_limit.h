// SharedLimit: one bound for the whole process, shared by every shard (--max-connections, upstream
// connects in flight). An atomic counter touched once per connection, never per byte; the only
// state shards share on the accept path.
#pragma once

#include <atomic>
#include <cstdint>

namespace ferry::base {

class SharedLimit final {
  public:
    // `max` 0 means unlimited (try_acquire always succeeds, the count is still kept).
    explicit SharedLimit(uint64_t max = 0) noexcept : max_(max) {}
    SharedLimit(const SharedLimit&) = delete;
    SharedLimit& operator=(const SharedLimit&) = delete;

    // Takes one unit; false (taking nothing) when the limit is reached. Any thread.
    [[nodiscard]] bool try_acquire() noexcept {
        const uint64_t before = used_.fetch_add(1, std::memory_order_relaxed);
        if (max_ != 0 && before >= max_) {
            used_.fetch_sub(1, std::memory_order_relaxed);
            return false;
        }
        return true;
    }
    // Gives back one unit taken by try_acquire. Any thread.
    void release() noexcept { used_.fetch_sub(1, std::memory_order_relaxed); }

    [[nodiscard]] uint64_t in_use() const noexcept { return used_.load(std::memory_order_relaxed); }
    [[nodiscard]] uint64_t max() const noexcept { return max_; }

  private:
    const uint64_t max_;
    std::atomic<uint64_t> used_{0};
};

}  // namespace ferry::base
