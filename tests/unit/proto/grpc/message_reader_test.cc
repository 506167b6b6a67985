#include "ferry/proto/grpc/message_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry::proto::grpc {
namespace {

struct Message {
    bool compressed = false;
    uint32_t length = 0;
    std::string payload;
    bool ended = false;
};

struct Collect {
    std::vector<Message> messages;
    int stop_after_starts = -1;  // stop at the start of the Nth message (0-based) when >= 0
    bool on_message_start(MessagePrefix p) {
        messages.push_back({p.compressed, p.length, {}, false});
        return stop_after_starts < 0 || static_cast<int>(messages.size()) <= stop_after_starts;
    }
    bool on_message_data(std::span<const std::byte> b, bool end) {
        EXPECT_FALSE(messages.empty());
        EXPECT_FALSE(messages.back().ended);
        messages.back().payload.append(reinterpret_cast<const char*>(b.data()), b.size());
        messages.back().ended = end;
        return true;
    }
};

std::string framed(std::string_view payload, bool compressed = false) {
    std::string out(kPrefixSize, '\0');
    write_prefix(
        std::span<std::byte, kPrefixSize>(reinterpret_cast<std::byte*>(out.data()), kPrefixSize),
        compressed, static_cast<uint32_t>(payload.size()));
    out += payload;
    return out;
}

std::span<const std::byte> bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

TEST(GrpcMessageReader, ReadsEveryMessageWholeOnEverySplitOfItsInput) {
    const std::string wire =
        framed("") + framed("hello", true) + framed(std::string(300, 'x')) + framed("z");
    for (size_t a = 0; a <= wire.size(); ++a) {
        for (size_t b = a; b <= wire.size(); b += 7) {
            MessageReader reader;
            Collect sink;
            for (auto [from, to] : {std::pair{size_t{0}, a}, {a, b}, {b, wire.size()}}) {
                const ReadResult r =
                    reader.feed(bytes(std::string_view(wire).substr(from, to - from)), sink);
                ASSERT_EQ(r.status, ReadStatus::NeedMore);
                ASSERT_EQ(r.consumed, to - from);
            }
            ASSERT_EQ(sink.messages.size(), 4U) << a << " " << b;
            EXPECT_EQ(sink.messages[0].payload, "");
            EXPECT_TRUE(sink.messages[0].ended);
            EXPECT_TRUE(sink.messages[1].compressed);
            EXPECT_EQ(sink.messages[1].payload, "hello");
            EXPECT_EQ(sink.messages[2].length, 300U);
            EXPECT_EQ(sink.messages[2].payload, std::string(300, 'x'));
            EXPECT_EQ(sink.messages[3].payload, "z");
            for (const Message& m : sink.messages) {
                EXPECT_TRUE(m.ended);
            }
            EXPECT_TRUE(reader.at_boundary());
        }
    }
}

TEST(GrpcMessageReader, IsNotAtABoundaryInsideAPrefixOrAPayload) {
    const std::string wire = framed("abc");
    MessageReader reader;
    Collect sink;
    (void)reader.feed(bytes(std::string_view(wire).substr(0, 2)), sink);
    EXPECT_FALSE(reader.at_boundary());
    (void)reader.feed(bytes(std::string_view(wire).substr(2, 4)), sink);
    EXPECT_FALSE(reader.at_boundary());
    (void)reader.feed(bytes(std::string_view(wire).substr(6)), sink);
    EXPECT_TRUE(reader.at_boundary());
}

TEST(GrpcMessageReader, AMessageOverTheLimitIsResourceExhaustedBeforeItsPayload) {
    MessageReader reader(16);
    Collect sink;
    const std::string wire = framed(std::string(16, 'a')) + framed(std::string(17, 'b'));
    const ReadResult r = reader.feed(bytes(wire), sink);
    EXPECT_EQ(r.status, ReadStatus::Error);
    EXPECT_EQ(r.code, StatusCode::ResourceExhausted);
    EXPECT_EQ(r.consumed, 21U + kPrefixSize);
    ASSERT_EQ(sink.messages.size(), 1U);
    // The reader stays failed.
    EXPECT_EQ(reader.feed(bytes(framed("")), sink).status, ReadStatus::Error);
}

TEST(GrpcMessageReader, ACompressedFlagOtherThanZeroOrOneIsInternal) {
    std::string wire = framed("abc");
    wire[0] = 2;
    MessageReader reader;
    Collect sink;
    const ReadResult r = reader.feed(bytes(wire), sink);
    EXPECT_EQ(r.status, ReadStatus::Error);
    EXPECT_EQ(r.code, StatusCode::Internal);
    EXPECT_TRUE(sink.messages.empty());
}

TEST(GrpcMessageReader, StopsWhereTheSinkSaysAndResumesFromThere) {
    const std::string wire = framed("one") + framed("two");
    MessageReader reader;
    Collect sink;
    sink.stop_after_starts = 1;  // refuse the second start
    const ReadResult r = reader.feed(bytes(wire), sink);
    EXPECT_EQ(r.status, ReadStatus::Stopped);
    EXPECT_EQ(r.consumed, wire.size() - 3);
    sink.stop_after_starts = -1;
    const ReadResult rest = reader.feed(bytes(std::string_view(wire).substr(r.consumed)), sink);
    EXPECT_EQ(rest.status, ReadStatus::NeedMore);
    ASSERT_EQ(sink.messages.size(), 2U);
    EXPECT_EQ(sink.messages[1].payload, "two");
}

}  // namespace
}  // namespace ferry::proto::grpc
