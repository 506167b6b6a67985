#include "ferry/proto/tunnel/frame_encoder.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "test_util.h"

namespace ferry::proto::tunnel {
namespace {

using testing::as_bytes;
using testing::feed_whole;
using testing::FrameBuilder;

std::vector<uint8_t> octets(std::span<const std::byte> b) {
    std::vector<uint8_t> out;
    for (std::byte x : b) {
        out.push_back(std::to_integer<uint8_t>(x));
    }
    return out;
}

// Decodes preface + default HELLO + `frames` and returns the events after the HELLO.
std::vector<std::string> round_trip(const FrameBuilder& frames) {
    FrameBuilder b;
    b.preface().hello().append(frames.bytes);
    auto out = feed_whole(b.bytes);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok) << out.detail;
    EXPECT_FALSE(out.events.empty());
    out.events.erase(out.events.begin());
    return out.events;
}

TEST(TunnelFrameEncoder, WritesThePreface) {
    std::array<std::byte, 8> out{};
    ASSERT_EQ(encode_preface(out), kPrefaceSize);
    EXPECT_EQ(octets(out), (std::vector<uint8_t>{0x89, 'F', 'E', 'R', 'R', 'Y', '\r', '\n'}));
}

TEST(TunnelFrameEncoder, WritesBigEndianHeaders) {
    std::array<std::byte, kWindowFrameSize> window{};
    ASSERT_EQ(encode_window(window, 0x01020304, 0x0a0b0c0d), kWindowFrameSize);
    EXPECT_EQ(octets(window), (std::vector<uint8_t>{0, 0, 0, 4, 0x3, 0, 0, 0, 0x01, 0x02, 0x03,
                                                    0x04, 0x0a, 0x0b, 0x0c, 0x0d}));
    std::array<std::byte, kFrameHeaderSize> data{};
    ASSERT_EQ(encode_data_header(data, 7, 0x00abcdef, true), kFrameHeaderSize);
    EXPECT_EQ(octets(data),
              (std::vector<uint8_t>{0, 0xab, 0xcd, 0xef, 0x2, 0x1, 0, 0, 0, 0, 0, 7}));
}

// The examples of docs/tunnel-protocol.md §11, byte for byte.
TEST(TunnelFrameEncoder, MatchesTheSpecExamples) {
    HelloSettings s;
    s.max_frame_size = 65536;
    s.capabilities = kCapabilityKeyUpdate;
    s.node_name = "ferry-a-0";
    const std::vector<MetadataEntry> md = {{"x-trail", "ferry-a-0"}};
    FrameBuilder b;
    b.hello(s).open(1, StreamProtocol::WebSocket, "room-42", md).data(1, "hi", true);
    b.window(0, 131072).ping(true, 0x1122334455667788).reset(3, ErrorCode::ConnectRefused);
    b.goaway(7, ErrorCode::Shutdown, "rekey");
    const std::vector<uint8_t> expected = {
        // HELLO
        0x00, 0x00, 0x00, 0x39, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x04,
        0x00, 0x00, 0x00, 0x03, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x04, 0x00,
        0x00, 0x04, 0x00, 0x00, 0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x09,
        'f', 'e', 'r', 'r', 'y', '-', 'a', '-', '0',
        // OPEN
        0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x07,
        'r', 'o', 'o', 'm', '-', '4', '2', 0x00, 0x01, 0x00, 0x07, 'x', '-', 't', 'r', 'a', 'i',
        'l', 0x00, 0x09, 'f', 'e', 'r', 'r', 'y', '-', 'a', '-', '0',
        // DATA
        0x00, 0x00, 0x00, 0x02, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 'h', 'i',
        // WINDOW
        0x00, 0x00, 0x00, 0x04, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
        0x00,
        // PING (ACK)
        0x00, 0x00, 0x00, 0x08, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x22, 0x33,
        0x44, 0x55, 0x66, 0x77, 0x88,
        // RESET
        0x00, 0x00, 0x00, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
        0x06,
        // GOAWAY
        0x00, 0x00, 0x00, 0x0d, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x07, 0x00, 0x00, 0x00, 0x0a, 'r', 'e', 'k', 'e', 'y'};
    EXPECT_EQ(octets(b.bytes), expected);
}

TEST(TunnelFrameEncoder, RoundTripsHelloWithEverySetting) {
    HelloSettings s;
    s.max_frame_size = kMaxFrameSizeLimit;
    s.initial_stream_window = kMaxWindowSize;
    s.connection_window = 0;
    s.max_streams = 0xffff'ffff;
    s.capabilities = 0x8000'0001;
    s.node_name = std::string_view("ferry-terminator-0\xc3\xa9");
    FrameBuilder b;
    b.preface().hello(s);
    ASSERT_EQ(b.bytes.size(), kPrefaceSize + hello_frame_size(s));
    const auto out = feed_whole(b.bytes);
    ASSERT_EQ(out.events.size(), 1U);
    EXPECT_EQ(out.events[0],
              "HELLO v1 range=1-1 mfs=16777216 isw=2147483647 cw=0 ms=4294967295 caps=2147483649 "
              "node=ferry-terminator-0\xc3\xa9");
}

TEST(TunnelFrameEncoder, RoundTripsHelloWithTheLongestNodeName) {
    HelloSettings s;
    const std::string name(kMaxNodeNameSize, 'n');
    s.node_name = name;
    FrameBuilder b;
    b.preface().hello(s);
    const auto out = feed_whole(b.bytes);
    ASSERT_EQ(out.events.size(), 1U);
    EXPECT_EQ(out.events[0].substr(out.events[0].size() - 256), "=" + name);
}

TEST(TunnelFrameEncoder, RefusesHelloSettingsThePeerWouldReject) {
    std::array<std::byte, 1024> out{};
    const std::string long_name(kMaxNodeNameSize + 1, 'n');
    HelloSettings s;
    s.node_name = long_name;
    EXPECT_EQ(hello_frame_size(s), 0U);
    EXPECT_EQ(encode_hello(out, s), 0U);
    s = HelloSettings{};
    s.max_frame_size = kDefaultMaxFrameSize - 1;
    EXPECT_EQ(encode_hello(out, s), 0U);
    s = HelloSettings{};
    s.connection_window = kMaxWindowSize + 1;
    EXPECT_EQ(encode_hello(out, s), 0U);
}

TEST(TunnelFrameEncoder, RoundTripsOpenWithAndWithoutMetadata) {
    FrameBuilder b;
    b.open(1, StreamProtocol::Tcp, "db:5432")
        .open(0x7fff'ffff, StreamProtocol::Grpc, "lane7/Stream",
              {{"content-type", "application/grpc"}, {"te", "trailers"}, {"", ""}});
    EXPECT_EQ(round_trip(b), (std::vector<std::string>{
                                 "OPEN 1 proto=0 key=db:5432 md={}",
                                 "OPEN 2147483647 proto=2 key=lane7/Stream "
                                 "md={content-type=application/grpc;te=trailers;=;}",
                             }));
}

TEST(TunnelFrameEncoder, SizesOpenFramesExactly) {
    const std::vector<MetadataEntry> md = {{"a", "bc"}};
    // header + protocol + key length + key + count + (2 + 1) + (2 + 2)
    EXPECT_EQ(open_frame_size(StreamProtocol::WebSocket, "key", md), 12U + 1 + 2 + 3 + 2 + 3 + 4);
    std::vector<std::byte> out(open_frame_size(StreamProtocol::WebSocket, "key", md));
    EXPECT_EQ(encode_open(out, 1, StreamProtocol::WebSocket, "key", md), out.size());
    out.pop_back();
    EXPECT_EQ(encode_open(out, 1, StreamProtocol::WebSocket, "key", md), 0U);
}

TEST(TunnelFrameEncoder, RefusesOpenFieldsThatDoNotFitTheirLengthPrefix) {
    const std::string too_long(65536, 'k');
    const std::string longest(65535, 'k');
    EXPECT_EQ(open_frame_size(StreamProtocol::Tcp, too_long, {}), 0U);
    EXPECT_NE(open_frame_size(StreamProtocol::Tcp, longest, {}), 0U);
    const std::vector<MetadataEntry> bad_value = {{"n", too_long}};
    EXPECT_EQ(open_frame_size(StreamProtocol::Tcp, "", bad_value), 0U);
    const std::vector<MetadataEntry> too_many(65536, {"", ""});
    EXPECT_EQ(open_frame_size(StreamProtocol::Tcp, "", too_many), 0U);
    EXPECT_EQ(open_frame_size(static_cast<StreamProtocol>(3), "", {}), 0U);
}

TEST(TunnelFrameEncoder, RoundTripsDataWithAndWithoutFin) {
    FrameBuilder b;
    b.data(1, "ping").data(1, "pong", true).data(2, "", true).data(3, "");
    EXPECT_EQ(round_trip(b),
              (std::vector<std::string>{"DATA 1 pingpong FIN", "DATA 2  FIN", "DATA 3 "}));
}

TEST(TunnelFrameEncoder, RoundTripsWindowResetPingAndGoAway) {
    FrameBuilder b;
    b.window(0, 1)
        .window(5, kMaxWindowSize)
        .reset(5, ErrorCode::ConnectRefused)
        .reset(7, ErrorCode::VersionMismatch)
        .ping(false, 0)
        .ping(true, ~uint64_t{0})
        .goaway(0, ErrorCode::NoError)
        .goaway(kMaxStreamId, ErrorCode::ProtocolError, "bad frame from you");
    EXPECT_EQ(round_trip(b), (std::vector<std::string>{
                                 "WINDOW 0 +1",
                                 "WINDOW 5 +2147483647",
                                 "RESET 5 ConnectRefused(6)",
                                 "RESET 7 VersionMismatch(12)",
                                 "PING 0",
                                 "PING ACK 18446744073709551615",
                                 "GOAWAY last=0 NoError ''",
                                 "GOAWAY last=2147483647 ProtocolError 'bad frame from you'",
                             }));
}

TEST(TunnelFrameEncoder, ReturnsZeroWhenTheOutputIsTooSmall) {
    std::array<std::byte, 64> buf{};
    const std::span<std::byte> out(buf);
    EXPECT_EQ(encode_preface(out.first(7)), 0U);
    EXPECT_EQ(hello_frame_size(HelloSettings{}), kFrameHeaderSize + 48);
    EXPECT_EQ(encode_hello(out.first(kFrameHeaderSize + 47), HelloSettings{}), 0U);
    EXPECT_EQ(encode_data_header(out.first(11), 1, 0, false), 0U);
    EXPECT_EQ(encode_window(out.first(kWindowFrameSize - 1), 1, 1), 0U);
    EXPECT_EQ(encode_reset(out.first(kResetFrameSize - 1), 1, ErrorCode::Cancel), 0U);
    EXPECT_EQ(encode_ping(out.first(kPingFrameSize - 1), false, 1), 0U);
    EXPECT_EQ(encode_goaway(out.first(goaway_frame_size("bye") - 1), 1, ErrorCode::NoError, "bye"),
              0U);
    EXPECT_EQ(encode_goaway(out.first(goaway_frame_size("bye")), 1, ErrorCode::NoError, "bye"),
              goaway_frame_size("bye"));
}

TEST(TunnelErrorCode, HasStableNames) {
    EXPECT_STREQ(error_code_name(ErrorCode::NoError), "NoError");
    EXPECT_STREQ(error_code_name(ErrorCode::FlowControlError), "FlowControlError");
    EXPECT_STREQ(error_code_name(ErrorCode::ConnectRefused), "ConnectRefused");
    EXPECT_STREQ(error_code_name(ErrorCode::Shutdown), "Shutdown");
    EXPECT_STREQ(error_code_name(ErrorCode::VersionMismatch), "VersionMismatch");
    EXPECT_STREQ(error_code_name(static_cast<ErrorCode>(13)), "Unknown");
    static_assert(static_cast<uint32_t>(ErrorCode::BadPreface) == 11);
}

}  // namespace
}  // namespace ferry::proto::tunnel
