#include "ferry/proto/ws/frame_writer.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "ferry/proto/ws/frame_parser.h"
#include "test_util.h"

namespace ferry::proto::ws {
namespace {

using testing::as_bytes;
using testing::as_string;
using testing::client_options;
using testing::feed_whole;
using testing::kRfcKey;
using testing::masked;
using testing::server_options;
using testing::unmasked;

std::string header(Opcode op, bool fin, uint64_t length, std::optional<MaskKey> key = {}) {
    std::array<std::byte, kMaxFrameHeaderSize> out{};
    const size_t n = write_frame_header(out, op, fin, length, key);
    EXPECT_GE(n, 2U);
    EXPECT_LE(n, kMaxFrameHeaderSize);
    return as_string(std::span<const std::byte>(out.data(), n));
}

std::string hex(std::string_view s) {
    constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        out += out.empty() ? "" : " ";
        out += kHex[u >> 4];
        out += kHex[u & 0xf];
    }
    return out;
}

TEST(WsFrameWriter, WritesTheRfcExampleHeaders) {
    // RFC 6455 §5.7.
    EXPECT_EQ(hex(header(Opcode::Text, true, 5)), "81 05");
    EXPECT_EQ(hex(header(Opcode::Text, true, 5, kRfcKey)), "81 85 37 fa 21 3d");
    EXPECT_EQ(hex(header(Opcode::Text, false, 3)), "01 03");
    EXPECT_EQ(hex(header(Opcode::Continuation, true, 2)), "80 02");
    EXPECT_EQ(hex(header(Opcode::Ping, true, 5)), "89 05");
    EXPECT_EQ(hex(header(Opcode::Pong, true, 5, kRfcKey)), "8a 85 37 fa 21 3d");
    EXPECT_EQ(hex(header(Opcode::Binary, true, 256)), "82 7e 01 00");
    EXPECT_EQ(hex(header(Opcode::Binary, true, 65536)), "82 7f 00 00 00 00 00 01 00 00");
}

TEST(WsFrameWriter, PicksTheShortestLengthEncoding) {
    EXPECT_EQ(hex(header(Opcode::Binary, true, 0)), "82 00");
    EXPECT_EQ(hex(header(Opcode::Binary, true, 125)), "82 7d");
    EXPECT_EQ(hex(header(Opcode::Binary, true, 126)), "82 7e 00 7e");
    EXPECT_EQ(hex(header(Opcode::Binary, true, 65535)), "82 7e ff ff");
    EXPECT_EQ(hex(header(Opcode::Binary, false, 0x7fffffffffffffffULL, kRfcKey)),
              "02 ff 7f ff ff ff ff ff ff ff 37 fa 21 3d");
    // The hand-made frames of the parser tests use the same encoding.
    for (uint64_t n : {0ULL, 1ULL, 125ULL, 126ULL, 65535ULL, 65536ULL}) {
        const std::string payload(n, 'x');
        EXPECT_EQ(header(Opcode::Text, true, n) + payload, unmasked(0x81, payload));
    }
}

TEST(WsFrameWriter, FramesThatAServerParserReadsBack) {
    // A client's masked message in three fragments with a ping between, written with the writer
    // and apply_mask, parsed as a server would.
    std::string wire;
    const std::vector<std::pair<Opcode, std::string>> frames = {
        {Opcode::Text, "d\xc3\xa9j"}, {Opcode::Continuation, "\xc3\xa0 "}, {Opcode::Ping, "hb"}};
    for (const auto& [op, text] : frames) {
        wire += header(op, op == Opcode::Ping, text.size(), kRfcKey);
        std::string payload = text;
        apply_mask({reinterpret_cast<std::byte*>(payload.data()), payload.size()}, kRfcKey);
        wire += payload;
    }
    const MaskKey other = {std::byte{9}, std::byte{8}, std::byte{7}, std::byte{6}};
    std::string last = "vu, a long enough tail to need several mask words";
    wire += header(Opcode::Continuation, true, last.size(), other);
    // Masked piece by piece, as a sender streaming from several buffers would.
    std::span<std::byte> tail(reinterpret_cast<std::byte*>(last.data()), last.size());
    apply_mask(tail.first(5), other, 0);
    apply_mask(tail.subspan(5, 11), other, 5);
    apply_mask(tail.subspan(16), other, 16);
    wire += last;
    testing::expect_events(wire, server_options(),
                           {"Text:d\\xc3\\xa9j\\xc3\\xa0 ", "Ping:hb",
                            "...:vu, a long enough tail to need several mask words FIN"});
}

TEST(WsFrameWriter, WritesClosePayloads) {
    std::array<std::byte, kMaxControlPayload> out{};
    size_t n = write_close_payload(out, CloseCode::NormalClosure, "bye");
    EXPECT_EQ(as_string({out.data(), n}), std::string("\x03\xe8", 2) + "bye");
    n = write_close_payload(out, CloseCode::GoingAway, "");
    EXPECT_EQ(as_string({out.data(), n}), std::string("\x03\xe9", 2));
    n = write_close_payload(out, static_cast<CloseCode>(4000), "app");
    EXPECT_EQ(as_string({out.data(), n}), std::string("\x0f\xa0", 2) + "app");
    // No code: the empty body (§5.5.1), the reason cannot go without one.
    EXPECT_EQ(write_close_payload(out, CloseCode::NoStatusReceived, "ignored"), 0U);
}

TEST(WsFrameWriter, CutsALongCloseReasonOnACharacterBoundary) {
    std::array<std::byte, kMaxControlPayload> out{};
    // 123 bytes fit: ASCII is cut at exactly 123.
    const std::string ascii(200, 'r');
    EXPECT_EQ(write_close_payload(out, CloseCode::PolicyViolation, ascii), kMaxControlPayload);
    // 2-byte characters: 61 fit (122 bytes), the 62nd would straddle the limit.
    std::string accents;
    for (int i = 0; i < 80; ++i) {
        accents += "\xc3\xa9";
    }
    size_t n = write_close_payload(out, CloseCode::PolicyViolation, accents);
    EXPECT_EQ(n, 2U + 122U);
    CloseInfo info{};
    ASSERT_EQ(parse_close_payload({out.data(), n}, &info).detail, nullptr);
    EXPECT_EQ(info.reason, accents.substr(0, 122));
    // 4-byte characters after one ASCII byte: 30 fit (1 + 120 bytes).
    std::string emoji = "!";
    for (int i = 0; i < 40; ++i) {
        emoji += "\xf0\x9f\x98\x80";
    }
    n = write_close_payload(out, CloseCode::PolicyViolation, emoji);
    EXPECT_EQ(n, 2U + 121U);
    ASSERT_EQ(parse_close_payload({out.data(), n}, &info).detail, nullptr);

    EXPECT_EQ(utf8_prefix("abc", 10), "abc");
    EXPECT_EQ(utf8_prefix("ab\xe2\x82\xac", 4), "ab");
    EXPECT_EQ(utf8_prefix("ab\xe2\x82\xac", 5), "ab\xe2\x82\xac");
    EXPECT_EQ(utf8_prefix("\xe2\x82\xac", 0), "");
}

TEST(WsFrameWriter, WritesWholeControlFrames) {
    std::array<std::byte, kMaxControlFrameSize> out{};
    const std::string hello = "Hello";
    size_t n = write_control_frame(out, Opcode::Ping, as_bytes(hello), std::nullopt);
    EXPECT_EQ(hex(as_string({out.data(), n})), "89 05 48 65 6c 6c 6f");
    n = write_control_frame(out, Opcode::Pong, as_bytes(hello), kRfcKey);
    EXPECT_EQ(hex(as_string({out.data(), n})), "8a 85 37 fa 21 3d 7f 9f 4d 51 58");
    const std::string max(125, 'm');
    n = write_control_frame(out, Opcode::Ping, as_bytes(max), kRfcKey);
    EXPECT_EQ(n, kMaxControlFrameSize);
    EXPECT_EQ(as_string({out.data(), n}), masked(0x89, max));
    EXPECT_EQ(write_control_frame(out, Opcode::Ping, as_bytes(std::string(126, 'm')), kRfcKey), 0U);
}

TEST(WsFrameWriter, WritesCloseFramesBothSidesParse) {
    std::array<std::byte, kMaxControlFrameSize> out{};
    size_t n = write_close_frame(out, CloseCode::MessageTooBig, "too big", kRfcKey);
    auto parsed = feed_whole(as_string({out.data(), n}), server_options());
    EXPECT_EQ(parsed.status, ParseStatus::Closed);
    EXPECT_EQ(parsed.events, std::vector<std::string>{"Close:\\x03\\xf1too big"});

    n = write_close_frame(out, CloseCode::NoStatusReceived, "", std::nullopt);
    EXPECT_EQ(hex(as_string({out.data(), n})), "88 00");
    parsed = feed_whole(as_string({out.data(), n}), client_options());
    EXPECT_EQ(parsed.status, ParseStatus::Closed);

    // The longest reason still makes a valid control frame.
    n = write_close_frame(out, CloseCode::InternalError, std::string(300, 'e'), std::nullopt);
    EXPECT_EQ(n, 2U + kMaxControlPayload);
    parsed = feed_whole(as_string({out.data(), n}), client_options());
    EXPECT_EQ(parsed.status, ParseStatus::Closed) << parsed.detail;
    EXPECT_EQ(parsed.events, std::vector<std::string>{"Close:\\x03\\xf3" + std::string(123, 'e')});
}

}  // namespace
}  // namespace ferry::proto::ws
