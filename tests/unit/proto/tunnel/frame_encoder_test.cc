#include "ferry/proto/tunnel/frame_encoder.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "test_util.h"

namespace ferry::proto::tunnel {
namespace {

using testing::as_bytes;
using testing::escaped;
using testing::feed_whole;
using testing::FrameBuilder;

std::vector<uint8_t> octets(std::span<const std::byte> b) {
    std::vector<uint8_t> out;
    for (std::byte x : b) {
        out.push_back(std::to_integer<uint8_t>(x));
    }
    return out;
}

// "00 0a ff" -> bytes; the hex of the spec's examples, without the annotations.
std::vector<std::byte> from_hex(std::string_view hex) {
    std::vector<std::byte> out;
    for (size_t i = 0; i < hex.size();) {
        if (hex[i] == ' ' || hex[i] == '\n') {
            ++i;
            continue;
        }
        out.push_back(
            static_cast<std::byte>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
        i += 2;
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
    s.capabilities = kCapabilityKeyUpdate | kCapabilityMessages;
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
        0x00, 0x04, 0x00, 0x00, 0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03, 0x00, 0x06, 0x00, 0x09,
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

    // And the decoder reads those bytes back as the spec describes them.
    FrameBuilder input;
    input.preface().append(b.bytes);
    const auto out = feed_whole(input.bytes, 65536);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok) << out.detail;
    EXPECT_EQ(out.events, (std::vector<std::string>{
                              "HELLO v1 range=1-1 mfs=65536 isw=262144 cw=16777216 ms=1024 "
                              "caps=3 node=ferry-a-0",
                              "OPEN 1 proto=1 key=room-42 md={x-trail=ferry-a-0;}",
                              "DATA 1 hi FIN",
                              "WINDOW 0 +131072",
                              "PING ACK 1234605616436508552",
                              "RESET 3 ConnectRefused(6)",
                              "GOAWAY last=7 Shutdown 'rekey'",
                          }));
}

// The v1.1 examples of docs/tunnel-protocol.md §11: the encoder writes exactly the spec's hex,
// and the decoder reads the spec's hex as described.
TEST(TunnelFrameEncoder, MatchesTheV11SpecExamples) {
    struct Example {
        const char* hex;
        FrameBuilder encoded;
        std::string event;
    };
    const std::vector<Example> examples = {
        {"00 00 00 16  0a  00  00 00  00 00 00 01\n"
         "00 01\n"
         "00 0c  3a 73 75 62 70 72 6f 74 6f 63 6f 6c\n"
         "00 04  63 68 61 74",
         FrameBuilder().open_ack(1, {{":subprotocol", "chat"}}),
         "OPEN_ACK 1 md={:subprotocol=chat;}"},
        {"00 00 00 02  02  12  00 00  00 00 00 01  68 69",
         FrameBuilder().message(1, "hi", MessageKind::Text), "DATA 1 [Text]hi EOM"},
        {"00 00 00 24  0b  00  00 00  00 00 00 05\n"
         "00 02\n"
         "00 0b  67 72 70 63 2d 73 74 61 74 75 73\n"
         "00 01  30\n"
         "00 0b  78 2d 74 72 61 63 65 2d 62 69 6e\n"
         "00 03  00 ff 10",
         FrameBuilder().trailers(
             5, {{"grpc-status", "0"}, {"x-trace-bin", std::string_view("\x00\xff\x10", 3)}}),
         "TRAILERS 5 md={grpc-status=0;x-trace-bin=\\x00\\xff\\x10;}"},
        {"00 00 00 0e  04  00  00 00  00 00 00 07\n"
         "00 00 00 0d\n"
         "70 72 6f 74 6f 63 6f 6c 20 37",
         FrameBuilder().reset(7, ErrorCode::UnsupportedProtocol, "protocol 7"),
         "RESET 7 UnsupportedProtocol(13) 'protocol 7'"},
    };
    for (const auto& e : examples) {
        SCOPED_TRACE(e.event);
        const std::vector<std::byte> spec = from_hex(e.hex);
        EXPECT_EQ(octets(e.encoded.bytes), octets(spec));
        FrameBuilder frames;
        frames.append(spec);
        EXPECT_EQ(round_trip(frames), (std::vector<std::string>{e.event}));
    }
}

TEST(TunnelFrameEncoder, RoundTripsHelloWithEverySetting) {
    HelloSettings s;
    s.max_frame_size = kMaxFrameSizeLimit;
    s.initial_stream_window = kMaxWindowSize;
    s.connection_window = 0;
    s.max_streams = 0xffff'ffff;
    s.capabilities = 0x8000'0001;
    s.shards = 16;
    s.node_name = std::string_view("ferry-terminator-0\xc3\xa9");
    FrameBuilder b;
    b.preface().hello(s);
    ASSERT_EQ(b.bytes.size(), kPrefaceSize + hello_frame_size(s));
    const auto out = feed_whole(b.bytes);
    ASSERT_EQ(out.events.size(), 1U);
    EXPECT_EQ(out.events[0],
              "HELLO v1 range=1-1 mfs=16777216 isw=2147483647 cw=0 ms=4294967295 caps=2147483649 "
              "shards=16 node=ferry-terminator-0\xc3\xa9");
}

// Shards is sent only when known, so a HELLO without it is byte for byte what v1.1 sent.
TEST(TunnelFrameEncoder, LeavesShardsOutUntilItIsKnown) {
    HelloSettings s;
    const size_t without = hello_frame_size(s);
    s.shards = 4;
    EXPECT_EQ(hello_frame_size(s), without + 8);
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
}

TEST(TunnelFrameEncoder, RoundTripsOpenWithAProtocolValueItDoesNotKnow) {
    FrameBuilder b;
    b.open(1, static_cast<StreamProtocol>(7), "k").open(3, static_cast<StreamProtocol>(255), "");
    EXPECT_EQ(round_trip(b), (std::vector<std::string>{"OPEN 1 proto=7 key=k md={}",
                                                       "OPEN 3 proto=255 key= md={}"}));
}

TEST(TunnelFrameEncoder, RoundTripsDataWithAndWithoutFin) {
    FrameBuilder b;
    b.data(1, "ping").data(1, "pong", true).data(2, "", true).data(3, "");
    EXPECT_EQ(round_trip(b),
              (std::vector<std::string>{"DATA 1 pingpong FIN", "DATA 2  FIN", "DATA 3 "}));
}

TEST(TunnelFrameEncoder, RoundTripsEveryDataFlagCombination) {
    FrameBuilder b;
    std::vector<std::string> expected;
    uint32_t id = 1;
    for (uint8_t kind = 0; kind < 16; ++kind) {
        for (int ends = 0; ends < 4; ++ends) {
            const bool fin = (ends & 1) != 0;
            const bool eom = (ends & 2) != 0;
            const auto k = static_cast<MessageKind>(kind);
            const DataFlags flags = DataFlags::make(fin, eom, k);
            EXPECT_EQ(flags.fin(), fin);
            EXPECT_EQ(flags.end_message(), eom);
            EXPECT_EQ(flags.kind(), k);
            b.message(id, "p", k, eom, fin);
            std::string line = "DATA " + std::to_string(id) + " ";
            if (k != MessageKind::Binary) {
                line += "[" + testing::kind_name(k) + "]";
            }
            line += "p";
            line += eom ? " EOM" : "";
            line += fin ? " FIN" : "";
            expected.push_back(line);
            id += 2;  // one stream per frame, so no two frames share a line
        }
    }
    EXPECT_EQ(round_trip(b), expected);
}

TEST(TunnelFrameEncoder, WritesDataFlagsIntoTheFlagsByte) {
    std::array<std::byte, kFrameHeaderSize> out{};
    ASSERT_EQ(encode_data_header(out, 1, 2, DataFlags::make(false, true, MessageKind::Text)),
              kFrameHeaderSize);
    EXPECT_EQ(std::to_integer<uint8_t>(out[5]), 0x12);
    ASSERT_EQ(encode_data_header(out, 1, 0, DataFlags::make(true, true, MessageKind::Compressed)),
              kFrameHeaderSize);
    EXPECT_EQ(std::to_integer<uint8_t>(out[5]), 0x33);
    ASSERT_EQ(encode_data_header(out, 1, 0, DataFlags::make(true)), kFrameHeaderSize);
    EXPECT_EQ(std::to_integer<uint8_t>(out[5]), 0x01);
    static_assert(DataFlags::make(false, false, MessageKind::Close).bits == 0x20);
    static_assert(DataFlags{0x31}.kind() == MessageKind::Compressed);
    static_assert(DataFlags{0x31}.fin() && !DataFlags{0x31}.end_message());
}

TEST(TunnelFrameEncoder, RoundTripsOpenAckAndTrailersWithBinaryValuesAndEmptyLists) {
    std::string binary;
    for (int i = 0; i < 256; ++i) {
        binary += static_cast<char>(i);
    }
    FrameBuilder b;
    b.open_ack(2)
        .open_ack(kMaxStreamId, {{":status", "101"}, {"sec-websocket-protocol", "chat"}})
        .trailers(4, {{"grpc-status", "0"}, {"grpc-status-details-bin", binary}, {"", ""}})
        .trailers(6);
    EXPECT_EQ(
        round_trip(b),
        (std::vector<std::string>{
            "OPEN_ACK 2 md={}",
            "OPEN_ACK 2147483647 md={:status=101;sec-websocket-protocol=chat;}",
            "TRAILERS 4 md={grpc-status=0;grpc-status-details-bin=" + escaped(binary) + ";=;}",
            "TRAILERS 6 md={}",
        }));
}

TEST(TunnelFrameEncoder, SizesOpenAckAndTrailersExactly) {
    const std::vector<MetadataEntry> md = {{"a", "bc"}, {"", ""}};
    // header + count + (2 + 1) + (2 + 2) + (2 + 0) + (2 + 0)
    EXPECT_EQ(open_ack_frame_size(md), 12U + 2 + 3 + 4 + 2 + 2);
    EXPECT_EQ(trailers_frame_size(md), open_ack_frame_size(md));
    EXPECT_EQ(open_ack_frame_size({}), 14U);
    std::vector<std::byte> out(open_ack_frame_size(md));
    EXPECT_EQ(encode_open_ack(out, 1, md), out.size());
    EXPECT_EQ(std::to_integer<uint8_t>(out[4]), 0x0a);
    EXPECT_EQ(encode_trailers(out, 1, md), out.size());
    EXPECT_EQ(std::to_integer<uint8_t>(out[4]), 0x0b);
    out.pop_back();
    EXPECT_EQ(encode_open_ack(out, 1, md), 0U);
    EXPECT_EQ(encode_trailers(out, 1, md), 0U);
}

TEST(TunnelFrameEncoder, RefusesMetadataThatDoesNotFitItsLengthPrefix) {
    const std::string too_long(65536, 'v');
    const std::vector<MetadataEntry> bad_value = {{"n", too_long}};
    const std::vector<MetadataEntry> bad_name = {{too_long, ""}};
    const std::vector<MetadataEntry> too_many(65536, {"", ""});
    for (const auto& md : {bad_value, bad_name, too_many}) {
        EXPECT_EQ(open_ack_frame_size(md), 0U);
        EXPECT_EQ(trailers_frame_size(md), 0U);
        std::vector<std::byte> out(1 << 20);
        EXPECT_EQ(encode_open_ack(out, 1, md), 0U);
        EXPECT_EQ(encode_trailers(out, 1, md), 0U);
    }
    const std::vector<MetadataEntry> most(65535, {"", ""});
    EXPECT_EQ(trailers_frame_size(most), 12U + 2 + 65535 * 4);
}

TEST(TunnelFrameEncoder, RoundTripsResetWithAndWithoutReason) {
    const std::string longest(kMaxResetReasonSize, 'r');
    FrameBuilder b;
    b.reset(1, ErrorCode::Cancel)
        .reset(3, ErrorCode::Cancel, "")
        .reset(5, ErrorCode::UnsupportedProtocol, "no upstream for protocol 2")
        .reset(7, ErrorCode::InternalError, longest);
    EXPECT_EQ(round_trip(b), (std::vector<std::string>{
                                 "RESET 1 Cancel(5)",
                                 "RESET 3 Cancel(5)",
                                 "RESET 5 UnsupportedProtocol(13) 'no upstream for protocol 2'",
                                 "RESET 7 InternalError(2) '" + longest + "'",
                             }));
}

TEST(TunnelFrameEncoder, SizesResetsAndRefusesOverlongReasons) {
    EXPECT_EQ(reset_frame_size({}), kResetFrameSize);
    EXPECT_EQ(reset_frame_size("why"), kResetFrameSize + 3);
    const std::string longest(kMaxResetReasonSize, 'r');
    const std::string too_long(kMaxResetReasonSize + 1, 'r');
    EXPECT_EQ(reset_frame_size(longest), kResetFrameSize + kMaxResetReasonSize);
    EXPECT_EQ(reset_frame_size(too_long), 0U);
    std::vector<std::byte> out(1024);
    EXPECT_EQ(encode_reset(out, 1, ErrorCode::Cancel, too_long), 0U);
    EXPECT_EQ(encode_reset(out, 1, ErrorCode::Cancel), kResetFrameSize);
    EXPECT_EQ(std::to_integer<uint8_t>(out[3]), 4);  // length field: code only
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
    EXPECT_EQ(encode_reset(out.first(reset_frame_size("why") - 1), 1, ErrorCode::Cancel, "why"),
              0U);
    EXPECT_EQ(encode_reset(out.first(reset_frame_size("why")), 1, ErrorCode::Cancel, "why"),
              reset_frame_size("why"));
    EXPECT_EQ(encode_open_ack(out.first(13), 1, {}), 0U);
    EXPECT_EQ(encode_trailers(out.first(13), 1, {}), 0U);
    EXPECT_EQ(encode_open_ack(out.first(14), 1, {}), 14U);
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
    EXPECT_STREQ(error_code_name(ErrorCode::UnsupportedProtocol), "UnsupportedProtocol");
    EXPECT_STREQ(error_code_name(static_cast<ErrorCode>(14)), "Unknown");
    static_assert(static_cast<uint32_t>(ErrorCode::UnsupportedProtocol) == 13);
    static_assert(static_cast<uint32_t>(ErrorCode::BadPreface) == 11);
}

}  // namespace
}  // namespace ferry::proto::tunnel
