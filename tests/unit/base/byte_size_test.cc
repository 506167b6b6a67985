#include "ferry/base/byte_size.h"

#include <gtest/gtest.h>

#include <string>

namespace ferry::base {
namespace {

uint64_t parse(const std::string& text) {
    ByteSize b;
    std::string error;
    EXPECT_TRUE(AbslParseFlag(text, &b, &error)) << text << ": " << error;
    return b.bytes;
}

TEST(ByteSize, TakesPlainCountsAndBinaryUnitsInAnyCase) {
    EXPECT_EQ(parse("0"), 0U);
    EXPECT_EQ(parse("1048576"), 1U << 20);
    EXPECT_EQ(parse("64k"), 64U << 10);
    EXPECT_EQ(parse("64KiB"), 64U << 10);
    EXPECT_EQ(parse("1MiB"), 1U << 20);
    EXPECT_EQ(parse("1mib"), 1U << 20);
    EXPECT_EQ(parse("4M"), 4U << 20);
    EXPECT_EQ(parse("1GiB"), 1ULL << 30);
    EXPECT_EQ(parse("2g"), 2ULL << 30);
    EXPECT_EQ(parse("512b"), 512U);
}

TEST(ByteSize, RefusesWhatIsNotACount) {
    for (const char* bad : {"", "MiB", "1.5MiB", "-1", "1TiB", "one", "1 2MiB",
                            "18446744073709551616", "17179869184GiB"}) {
        ByteSize b;
        std::string error;
        EXPECT_FALSE(AbslParseFlag(bad, &b, &error)) << bad;
        EXPECT_NE(error.find("byte count"), std::string::npos) << bad;
    }
}

TEST(ByteSize, PrintsTheShortestExactForm) {
    EXPECT_EQ(AbslUnparseFlag(ByteSize{1ULL << 30}), "1GiB");
    EXPECT_EQ(AbslUnparseFlag(ByteSize{64 << 10}), "64KiB");
    EXPECT_EQ(AbslUnparseFlag(ByteSize{1536 << 10}), "1536KiB");
    EXPECT_EQ(AbslUnparseFlag(ByteSize{1500}), "1500");
    EXPECT_EQ(AbslUnparseFlag(ByteSize{0}), "0");
}

}  // namespace
}  // namespace ferry::base
