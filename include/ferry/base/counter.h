// Metric cells written by exactly one shard thread and read by any (the admin endpoint).
//
// The owner updates with a relaxed load+store (a plain mov on x86, no lock prefix), so counting
// costs the data path nothing; readers on other threads see a torn-free recent value.
#pragma once

#include <atomic>
#include <cstdint>

namespace ferry::base {

class Counter final {
  public:
    void add(uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    [[nodiscard]] uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> value_{0};
};

// A level that goes up and down (open connections, buffers in use); same single-writer rule.
class Gauge final {
  public:
    void add(int64_t n) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
    [[nodiscard]] int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<int64_t> value_{0};
};

}  // namespace ferry::base
