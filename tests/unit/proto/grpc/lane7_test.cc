#include "ferry/proto/grpc/lane7.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry::proto::grpc::lane7 {
namespace {

std::span<const std::byte> bytes(const std::string& s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

TEST(Lane7, AMessageRoundTrips) {
    for (const std::string& payload :
         {std::string(), std::string("hi"), std::string(300, 'x'), std::string("\0\xff", 2)}) {
        std::string wire;
        encode_message(payload, &wire);
        std::string_view back;
        ASSERT_TRUE(decode_message(bytes(wire), &back));
        EXPECT_EQ(back, payload);
    }
}

TEST(Lane7, KnownBytesDecode) {
    // Message{payload: "abc"} as protoc writes it: tag 0x0a, length 3.
    const std::string wire(
        "\x0a\x03"
        "abc",
        5);
    std::string_view payload;
    ASSERT_TRUE(decode_message(bytes(wire), &payload));
    EXPECT_EQ(payload, "abc");
}

TEST(Lane7, UnknownFieldsOfEveryWireTypeAreSkipped) {
    std::string wire;
    wire += std::string("\x10\x96\x01", 3);  // field 2, varint 150
    wire += std::string(
        "\x19"
        "12345678",
        9);  // field 3, fixed64
    wire += std::string(
        "\x25"
        "1234",
        5);  // field 4, fixed32
    wire += std::string(
        "\x2a\x02"
        "zz",
        4);  // field 5, bytes
    wire += std::string(
        "\x0a\x02"
        "ok",
        4);  // field 1
    std::string_view payload;
    ASSERT_TRUE(decode_message(bytes(wire), &payload));
    EXPECT_EQ(payload, "ok");
}

TEST(Lane7, MalformedInputIsRefused) {
    std::string_view payload;
    for (const std::string& bad :
         {std::string("\x0a\x05"
                      "abc",
                      5),
          std::string("\x0a", 1), std::string("\x08", 1), std::string("\x0b", 1),
          std::string("\x00\x00", 2), std::string("\x08\x80", 2),
          std::string("\x08"
                      "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                      12),
          std::string("\x09"
                      "1234",
                      5)}) {
        EXPECT_FALSE(decode_message(bytes(bad), &payload)) << testing::PrintToString(bad);
    }
    // Field 1 as a varint is the wrong type for bytes.
    EXPECT_FALSE(decode_message(bytes(std::string("\x08\x01", 2)), &payload));
}

TEST(Lane7, AResultRoundTrips) {
    const std::vector<std::string> trail = {"ferry-a-0", "ferry-b-1"};
    std::string wire;
    encode_result("reply", trail, 3, &wire);
    DecodedResult r;
    ASSERT_TRUE(decode_result(bytes(wire), &r));
    EXPECT_EQ(r.payload, "reply");
    EXPECT_EQ(r.trail, trail);
    EXPECT_EQ(r.shard, 3U);
}

}  // namespace
}  // namespace ferry::proto::grpc::lane7
