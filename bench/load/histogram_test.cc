#include "histogram.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

namespace ferry::bench {
namespace {

TEST(Histogram, EmptyReportsZero) {
    Histogram h;
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.percentile(50), 0u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.max(), 0u);
}

TEST(Histogram, SmallValuesAreExact) {
    Histogram h;
    for (uint64_t v = 0; v < Histogram::kSubCount; ++v) {
        h.record(v);
    }
    EXPECT_EQ(h.percentile(0), 0u);
    EXPECT_EQ(h.percentile(50), 127u);
    EXPECT_EQ(h.percentile(100), 255u);
}

TEST(Histogram, BucketsAreContiguousAndBoundedInWidth) {
    for (size_t i = 0; i + 1 < Histogram::kBuckets; ++i) {
        ASSERT_EQ(Histogram::bucket_high(i) + 1, Histogram::bucket_low(i + 1)) << i;
        ASSERT_EQ(Histogram::bucket_of(Histogram::bucket_low(i)), i);
        ASSERT_EQ(Histogram::bucket_of(Histogram::bucket_high(i)), i);
        const uint64_t width = Histogram::bucket_high(i) - Histogram::bucket_low(i);
        ASSERT_LE(static_cast<double>(width), static_cast<double>(Histogram::bucket_low(i)) / 128.0)
            << i;
    }
    EXPECT_EQ(Histogram::bucket_of(UINT64_MAX), Histogram::kBuckets - 1);
    EXPECT_EQ(Histogram::bucket_high(Histogram::kBuckets - 1), UINT64_MAX);
}

TEST(Histogram, PercentilesOfUniformValuesAreWithinOnePercent) {
    Histogram h;
    for (uint64_t v = 1; v <= 1'000'000; ++v) {
        h.record(v);
    }
    const struct {
        double p;
        double expected;
    } cases[] = {{50, 500'000}, {90, 900'000}, {99, 990'000}, {99.9, 999'000}};
    for (const auto& c : cases) {
        const auto got = static_cast<double>(h.percentile(c.p));
        EXPECT_GE(got, c.expected) << c.p;
        EXPECT_LE(got, c.expected * 1.01) << c.p;
    }
    EXPECT_EQ(h.percentile(100), 1'000'000u);
    EXPECT_EQ(h.min(), 1u);
    EXPECT_DOUBLE_EQ(h.mean(), 500'000.5);
}

TEST(Histogram, MaxIsExactEvenInAWideBucket) {
    Histogram h;
    h.record(1'000'003);
    EXPECT_EQ(h.percentile(99.9), 1'000'003u);
    EXPECT_EQ(h.max(), 1'000'003u);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> dist(11.0, 1.5);
    Histogram all;
    Histogram a;
    Histogram b;
    for (int i = 0; i < 100'000; ++i) {
        const auto v = static_cast<uint64_t>(dist(rng));
        all.record(v);
        (i % 3 == 0 ? a : b).record(v);
    }
    a.merge(b);
    EXPECT_EQ(a.count(), all.count());
    EXPECT_EQ(a.min(), all.min());
    EXPECT_EQ(a.max(), all.max());
    for (double p : {1.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
        EXPECT_EQ(a.percentile(p), all.percentile(p)) << p;
    }
}

TEST(Histogram, ResetForgetsEverything) {
    Histogram h;
    h.record(42);
    h.reset();
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.percentile(99), 0u);
}

}  // namespace
}  // namespace ferry::bench
