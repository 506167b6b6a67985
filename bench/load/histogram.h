// Latency histogram for ferry-load: HdrHistogram's log-linear bucket layout, fixed memory,
// mergeable across worker threads, so percentiles cost nothing on the measured path.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferry::bench {

// Counts unsigned 64-bit values (ferry-load records nanoseconds). Values below 2^kSubBits are
// exact; above, each power of two is split into 2^(kSubBits-1) equal buckets, so a bucket's width
// is at most 1/128 of its lower bound and a reported percentile is at most 0.8% above the true
// value (it reports the bucket's highest value, clamped to the exact max). Memory is fixed at
// kBuckets counters (58 KiB) whatever is recorded. One writer; merge() combines per-thread copies.
class Histogram final {
  public:
    static constexpr unsigned kSubBits = 8;
    static constexpr uint64_t kSubCount = uint64_t{1} << kSubBits;
    static constexpr uint64_t kHalfCount = kSubCount / 2;
    static constexpr size_t kBuckets = (64 - kSubBits) * kHalfCount + kSubCount;

    Histogram() : counts_(kBuckets, 0) {}

    // Bucket index of `value`; contiguous and monotonic in value.
    [[nodiscard]] static size_t bucket_of(uint64_t value) noexcept {
        if (value < kSubCount) {
            return static_cast<size_t>(value);
        }
        const auto shift = static_cast<unsigned>(std::bit_width(value)) - kSubBits;
        return static_cast<size_t>(shift * kHalfCount + (value >> shift));
    }

    // Smallest and largest value that land in bucket `index`.
    [[nodiscard]] static uint64_t bucket_low(size_t index) noexcept {
        if (index < kSubCount) {
            return index;
        }
        const auto shift = static_cast<unsigned>(index / kHalfCount - 1);
        return static_cast<uint64_t>(index - shift * kHalfCount) << shift;
    }
    [[nodiscard]] static uint64_t bucket_high(size_t index) noexcept {
        if (index < kSubCount) {
            return index;
        }
        const auto shift = static_cast<unsigned>(index / kHalfCount - 1);
        return bucket_low(index) + ((uint64_t{1} << shift) - 1);
    }

    void record(uint64_t value) noexcept {
        ++counts_[bucket_of(value)];
        ++count_;
        sum_ += value;
        min_ = std::min(min_, value);
        max_ = std::max(max_, value);
    }

    void merge(const Histogram& other) noexcept {
        for (size_t i = 0; i < kBuckets; ++i) {
            counts_[i] += other.counts_[i];
        }
        count_ += other.count_;
        sum_ += other.sum_;
        min_ = std::min(min_, other.min_);
        max_ = std::max(max_, other.max_);
    }

    void reset() noexcept {
        std::fill(counts_.begin(), counts_.end(), 0);
        count_ = 0;
        sum_ = 0;
        min_ = UINT64_MAX;
        max_ = 0;
    }

    [[nodiscard]] uint64_t count() const noexcept { return count_; }
    [[nodiscard]] uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
    [[nodiscard]] uint64_t max() const noexcept { return max_; }
    [[nodiscard]] double mean() const noexcept {
        return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
    }

    // Value at percentile `p` in [0, 100]: the highest value of the bucket holding the
    // ceil(p% * count)-th smallest sample, clamped to [min, max]. 0 when empty.
    [[nodiscard]] uint64_t percentile(double p) const noexcept {
        if (count_ == 0) {
            return 0;
        }
        const double clamped = std::clamp(p, 0.0, 100.0);
        auto rank = static_cast<uint64_t>(std::ceil(clamped / 100.0 * static_cast<double>(count_)));
        rank = std::clamp<uint64_t>(rank, 1, count_);
        uint64_t seen = 0;
        for (size_t i = 0; i < kBuckets; ++i) {
            seen += counts_[i];
            if (seen >= rank) {
                return std::clamp(bucket_high(i), min(), max_);
            }
        }
        return max_;
    }

  private:
    std::vector<uint64_t> counts_;
    uint64_t count_ = 0;
    uint64_t sum_ = 0;
    uint64_t min_ = UINT64_MAX;
    uint64_t max_ = 0;
};

}  // namespace ferry::bench
