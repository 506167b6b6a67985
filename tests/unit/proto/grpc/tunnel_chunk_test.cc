#include "ferry/proto/grpc/tunnel_chunk.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>

namespace ferry::proto::grpc {
namespace {

// Collects the tunnel bytes; checks each piece is a view of the span being fed.
struct Collect {
    std::span<const std::byte> fed;
    std::string bytes;
    int pieces = 0;
    int stop_after = -1;
    bool on_chunk_data(std::span<const std::byte> b) {
        EXPECT_GE(b.data(), fed.data());
        EXPECT_LE(b.data() + b.size(), fed.data() + fed.size());
        bytes.append(reinterpret_cast<const char*>(b.data()), b.size());
        return ++pieces != stop_after;
    }
};

std::string encode(std::string_view payload) {
    std::array<std::byte, kMaxChunkHeaderSize> h;
    const size_t n = write_chunk_header(h, static_cast<uint32_t>(payload.size()));
    EXPECT_EQ(n, chunk_header_size(static_cast<uint32_t>(payload.size())));
    return std::string(reinterpret_cast<const char*>(h.data()), n) + std::string(payload);
}

// Feeds `wire` in pieces of `piece` bytes; the result of the last feed.
ReadResult feed_split(ChunkReader& r, Collect& c, const std::string& wire, size_t piece) {
    ReadResult last{0, ReadStatus::NeedMore, StatusCode::Ok, nullptr};
    for (size_t at = 0; at < wire.size(); at += piece) {
        const auto span = std::as_bytes(
            std::span<const char>(wire.data() + at, std::min(piece, wire.size() - at)));
        c.fed = span;
        last = r.feed(span, c);
        if (last.status == ReadStatus::Error) {
            return last;
        }
        EXPECT_EQ(last.consumed, span.size());
    }
    return last;
}

TEST(TunnelChunk, HeaderIsAPrefixAndAField1Tag) {
    const std::string wire = encode("hello");
    ASSERT_EQ(wire.size(), 5U + 2U + 5U);
    EXPECT_EQ(wire.substr(0, 7), std::string("\0\0\0\0\x07\x0a\x05", 7));
    EXPECT_EQ(chunk_header_size(0), kPrefixSize) << "an empty Chunk is an empty message";
    EXPECT_EQ(chunk_header_size(127), 7U);
    EXPECT_EQ(chunk_header_size(128), 8U);
    EXPECT_EQ(chunk_header_size(UINT32_MAX), kMaxChunkHeaderSize);
    const std::string big = encode(std::string(300, 'x'));
    EXPECT_EQ(big.substr(0, 8), std::string("\0\0\0\x01\x2f\x0a\xac\x02", 8)) << "303, varint 300";
}

TEST(TunnelChunk, ReadsEveryMessageSplitAnywhere) {
    std::string expected;
    std::string wire;
    std::mt19937 rng(7);
    for (uint32_t len : {0U, 1U, 5U, 127U, 128U, 300U, 16384U, 70000U}) {
        std::string payload(len, '\0');
        for (char& ch : payload) {
            ch = static_cast<char>(rng());
        }
        expected += payload;
        wire += encode(payload);
    }
    for (size_t piece :
         {size_t{1}, size_t{2}, size_t{3}, size_t{6}, size_t{7}, size_t{1000}, wire.size()}) {
        SCOPED_TRACE(piece);
        ChunkReader r;
        Collect c;
        const ReadResult res = feed_split(r, c, wire, piece);
        EXPECT_EQ(res.status, ReadStatus::NeedMore);
        EXPECT_TRUE(c.bytes == expected);
        EXPECT_TRUE(r.at_boundary());
    }
}

TEST(TunnelChunk, RejectsOtherFields) {
    // Field 2 (tag 0x12) where field 1 must be.
    const std::string wire("\0\0\0\0\x03\x12\x01x", 8);
    ChunkReader r;
    Collect c;
    const ReadResult res = feed_split(r, c, wire, 1);
    EXPECT_EQ(res.status, ReadStatus::Error);
    EXPECT_EQ(res.code, StatusCode::Internal);
    EXPECT_TRUE(c.bytes.empty());
    c.fed = {};
    EXPECT_EQ(r.feed({}, c).status, ReadStatus::Error) << "the error stays";
}

TEST(TunnelChunk, RejectsALengthThatDisagreesWithTheMessage) {
    for (const std::string& wire :
         {std::string("\0\0\0\0\x04\x0a\x01xy", 9), std::string("\0\0\0\0\x03\x0a\x05x", 8),
          std::string("\0\0\0\0\x01\x0a", 6),
          std::string("\0\0\0\0\x03\x0a\x01x\0\0\0\0\x01\xff", 14)}) {
        ChunkReader r;
        Collect c;
        EXPECT_EQ(feed_split(r, c, wire, 1).status, ReadStatus::Error);
    }
}

TEST(TunnelChunk, RejectsCompressedMessagesAndAnOverlongVarint) {
    {
        ChunkReader r;
        Collect c;
        EXPECT_EQ(feed_split(r, c, std::string("\x01\0\0\0\x03\x0a\x01x", 8), 3).status,
                  ReadStatus::Error);
    }
    {
        ChunkReader r;
        Collect c;
        const std::string wire("\0\0\0\0\x07\x0a\xff\xff\xff\xff\xff\x01", 12);
        EXPECT_EQ(feed_split(r, c, wire, 1).status, ReadStatus::Error);
    }
}

TEST(TunnelChunk, MessageOverTheLimitIsRefusedBeforeItsPayload) {
    ChunkReader r(64);
    Collect c;
    const ReadResult res = feed_split(r, c, encode(std::string(100, 'x')), 1000);
    EXPECT_EQ(res.status, ReadStatus::Error);
    EXPECT_EQ(res.code, StatusCode::ResourceExhausted);
    EXPECT_TRUE(c.bytes.empty());
}

TEST(TunnelChunk, SinkCanStopTheReader) {
    const std::string wire = encode("abc") + encode("def");
    ChunkReader r;
    Collect c;
    c.stop_after = 1;
    const auto span = std::as_bytes(std::span<const char>(wire.data(), wire.size()));
    c.fed = span;
    const ReadResult res = r.feed(span, c);
    EXPECT_EQ(res.status, ReadStatus::Stopped);
    EXPECT_EQ(res.consumed, 10U);
    EXPECT_EQ(c.bytes, "abc");
    const ReadResult rest = r.feed(span.subspan(res.consumed), c);
    EXPECT_EQ(rest.status, ReadStatus::NeedMore);
    EXPECT_EQ(c.bytes, "abcdef");
}

}  // namespace
}  // namespace ferry::proto::grpc
