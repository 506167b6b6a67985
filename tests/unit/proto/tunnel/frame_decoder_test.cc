#include "ferry/proto/tunnel/frame_decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"

namespace ferry::proto::tunnel {
namespace {

using testing::as_bytes;
using testing::describe_split;
using testing::escaped;
using testing::every_split;
using testing::feed_chunks;
using testing::feed_whole;
using testing::FeedOutcome;
using testing::FrameBuilder;
using testing::PayloadBuilder;
using testing::RecordingSink;

constexpr const char* kDefaultHello =
    "HELLO v1 range=1-1 mfs=16384 isw=262144 cw=16777216 ms=1024 caps=0 node=";

FrameBuilder session_start() {
    FrameBuilder b;
    b.preface().hello();
    return b;
}

// A conversation touching every frame type, with DATA frames long enough to be split.
FrameBuilder conversation() {
    HelloSettings hello;
    hello.max_frame_size = 65536;
    hello.capabilities = kCapabilityKeyUpdate;
    hello.node_name = "ferry-initiator-7x2k";
    const std::string big(5000, 'x');
    FrameBuilder b;
    b.preface()
        .hello(hello)
        .open(1, StreamProtocol::WebSocket, "room-42", {{"x-trail", "pod-a"}, {"path", "/chat"}})
        .data(1, "hello over the tunnel")
        .data(1, "")
        .data(1, big)
        .window(0, 70000)
        .open(3, StreamProtocol::Grpc, "", {})
        .raw(3, 0x7f, 0, 0, as_bytes("abc"))
        .data(3, "", true)
        .window(1, 1)
        .ping(false, 0x0102030405060708ULL)
        .ping(true, 42)
        .data(1, "last words", true)
        .reset(3, ErrorCode::Cancel)
        .goaway(3, ErrorCode::Shutdown, "draining for rekey");
    return b;
}

// Every byte value once, for metadata values that are not text (gRPC `-bin`).
std::string all_byte_values() {
    std::string bytes;
    for (int i = 0; i < 256; ++i) {
        bytes += static_cast<char>(i);
    }
    return bytes;
}

// A WebSocket close body: code 1000, reason "bye".
std::string close_body() { return std::string("\x03\xe8", 2) + "bye"; }

// A v1.1 conversation (Messages negotiated) touching every new frame, flag and kind: messages
// split across frames and across feeds, empty messages, FIN with and without END_MESSAGE,
// OPEN_ACK and TRAILERS with binary values and empty lists, RESET with a reason, an unknown
// protocol, a Tcp stream in between.
FrameBuilder conversation_v11() {
    HelloSettings hello;
    hello.capabilities = kCapabilityKeyUpdate | kCapabilityMessages;
    hello.node_name = "ferry-terminator-3";
    const std::string big(3000, 'm');
    const std::string binary = all_byte_values();
    FrameBuilder b;
    b.preface()
        .hello(hello)
        .open(1, StreamProtocol::WebSocket, "room-42",
              {{":path", "/chat"}, {":subprotocol", "chat, superchat"}})
        .open_ack(1, {{":subprotocol", "chat"}})
        .message(1, "hello ", MessageKind::Text, false)
        .message(1, "world", MessageKind::Text)
        .message(1, big, MessageKind::Binary)
        .message(1, "", MessageKind::Binary)
        .message(1, "", MessageKind::Text)
        .open(3, StreamProtocol::Grpc, "orders/Get", {{":path", "/orders.v1.Orders/Get"}})
        .open_ack(3, {{":status", "200"}, {"x-id-bin", binary}})
        .message(3, std::string("\x1f\x8b\x00zipped", 9), MessageKind::Compressed, false)
        .message(3, "more", MessageKind::Compressed)
        .data(5, "tcp bytes")
        .trailers(3, {{"grpc-status", "0"}, {"x-trace-bin", binary}, {"", ""}})
        .message(1, close_body(), MessageKind::Close, true, true)
        .open(7, static_cast<StreamProtocol>(7), "k")
        .reset(7, ErrorCode::UnsupportedProtocol, "protocol 7")
        .open_ack(9)
        .message(9, "x", MessageKind::Binary)
        .message(9, "", MessageKind::Binary, false, true)
        .trailers(11)
        .data(5, "", true)
        .reset(9, ErrorCode::Cancel);
    return b;
}

// Feeds `input` in every split of every_split() and expects the events and the final status of
// the whole-input run, with every DATA piece inside the chunk it came from.
void expect_split_invariant(std::span<const std::byte> input) {
    const auto whole = feed_whole(input);
    for (const auto& sizes : every_split(input.size())) {
        const auto out = feed_chunks(input, sizes);
        ASSERT_EQ(out.events, whole.events) << "chunks " << describe_split(sizes);
        ASSERT_EQ(out.last.status, whole.last.status) << "chunks " << describe_split(sizes);
        ASSERT_EQ(out.last.code, whole.last.code) << "chunks " << describe_split(sizes);
        ASSERT_TRUE(out.pieces_inside) << "chunks " << describe_split(sizes);
    }
}

void expect_error(const FeedOutcome& out, ErrorCode code) {
    EXPECT_EQ(out.last.status, DecodeStatus::Error);
    EXPECT_EQ(out.last.code, code) << error_code_name(out.last.code) << ": " << out.detail;
    EXPECT_FALSE(out.detail.empty());
}

TEST(TunnelFrameDecoder, DecodesPrefaceAndHelloWithDefaults) {
    const auto out = feed_whole(session_start().bytes);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok);
    ASSERT_EQ(out.events.size(), 1U);
    EXPECT_EQ(out.events[0], kDefaultHello);
}

TEST(TunnelFrameDecoder, DecodesEveryFrameTypeOfAConversation) {
    const auto out = feed_whole(conversation().bytes);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok);
    const std::vector<std::string> expected = {
        "HELLO v1 range=1-1 mfs=65536 isw=262144 cw=16777216 ms=1024 caps=1 "
        "node=ferry-initiator-7x2k",
        "OPEN 1 proto=1 key=room-42 md={x-trail=pod-a;path=/chat;}",
        "DATA 1 hello over the tunnel" + std::string(5000, 'x'),
        "WINDOW 0 +70000",
        "OPEN 3 proto=2 key= md={}",
        "DATA 3  FIN",
        "WINDOW 1 +1",
        "PING 72623859790382856",
        "PING ACK 42",
        "DATA 1 last words FIN",
        "RESET 3 Cancel(5)",
        "GOAWAY last=3 Shutdown 'draining for rekey'",
    };
    EXPECT_EQ(out.events, expected);
}

TEST(TunnelFrameDecoder, YieldsTheSameEventsForEveryTwoWaySplit) {
    const auto input = conversation().bytes;
    const auto whole = feed_whole(input);
    for (size_t cut = 0; cut <= input.size(); ++cut) {
        const auto split = feed_chunks(input, {cut});
        ASSERT_EQ(split.events, whole.events) << "cut at " << cut;
        ASSERT_EQ(split.last.status, DecodeStatus::Ok) << "cut at " << cut;
        ASSERT_TRUE(split.pieces_inside) << "cut at " << cut;
    }
}

TEST(TunnelFrameDecoder, YieldsTheSameEventsWhenFedByteByByte) {
    const auto input = conversation().bytes;
    const auto out = feed_chunks(input, std::vector<size_t>(input.size(), 1));
    EXPECT_EQ(out.events, feed_whole(input).events);
    EXPECT_TRUE(out.pieces_inside);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok);
}

TEST(TunnelFrameDecoder, YieldsTheSameEventsForRandomChunks) {
    const auto input = conversation().bytes;
    const auto whole = feed_whole(input);
    std::mt19937 rng(20240601);
    for (int round = 0; round < 300; ++round) {
        std::uniform_int_distribution<size_t> size_of(1, round % 2 == 0 ? 16 : 2048);
        std::vector<size_t> sizes;
        for (size_t total = 0; total < input.size();) {
            sizes.push_back(size_of(rng));
            total += sizes.back();
        }
        const auto out = feed_chunks(input, sizes);
        ASSERT_EQ(out.events, whole.events) << "round " << round;
        ASSERT_TRUE(out.pieces_inside) << "round " << round;
    }
}

TEST(TunnelFrameDecoder, DeliversDataPiecesInsideTheInputThatConcatenateToThePayload) {
    auto b = session_start();
    const size_t payload_at = b.bytes.size() + kFrameHeaderSize;
    std::string payload;
    for (int i = 0; i < 1000; ++i) {
        payload += static_cast<char>('a' + i % 26);
    }
    b.data(5, payload, true);

    RecordingSink sink;
    FrameDecoder<RecordingSink> decoder(sink);
    const std::span<const std::byte> input(b.bytes);
    std::string joined;
    size_t pos = 0;
    for (size_t n : {payload_at + 10, size_t{1}, size_t{300}, size_t{0}, size_t{689}}) {
        const auto chunk = input.subspan(pos, n);
        ASSERT_EQ(decoder.feed(chunk).status, DecodeStatus::Ok);
        for (const auto& piece : sink.pieces) {
            EXPECT_GE(piece.data(), chunk.data());
            EXPECT_LE(piece.data() + piece.size(), chunk.data() + chunk.size());
            joined += testing::as_string(piece);
        }
        sink.pieces.clear();
        pos += n;
    }
    EXPECT_EQ(pos, input.size());
    EXPECT_EQ(joined, payload);
    EXPECT_EQ(sink.data_calls, 4U);  // 10 + 1 + 300 + 689; the empty feed adds nothing
    EXPECT_EQ(sink.events.back(), "DATA 5 " + payload + " FIN");
}

TEST(TunnelFrameDecoder, SetsFinOnlyOnTheLastPiece) {
    auto b = session_start().data(1, "abcdef", true);
    const auto out = feed_chunks(b.bytes, {b.bytes.size() - 3});
    EXPECT_EQ(out.piece_flags, (std::vector<DataFlags>{DataFlags{}, DataFlags::make(true)}));
}

TEST(TunnelFrameDecoder, DeliversAZeroLengthFinFrameAsOneEmptyPiece) {
    const auto out = feed_whole(session_start().data(9, "", true).bytes);
    EXPECT_EQ(out.data_calls, 1U);
    EXPECT_EQ(out.events.back(), "DATA 9  FIN");
}

TEST(TunnelFrameDecoder, DeliversAZeroLengthFrameWithoutFinAsOneEmptyPiece) {
    const auto out = feed_whole(session_start().data(9, "").bytes);
    EXPECT_EQ(out.data_calls, 1U);
    EXPECT_EQ(out.events.back(), "DATA 9 ");
}

// Stops the decoder at every event of `input` in turn; feeding the rest must complete the same
// sequence as an uninterrupted run.
void expect_stop_and_resume(std::span<const std::byte> input) {
    const auto whole = feed_whole(input);
    for (long stop_at = 0;; ++stop_at) {
        RecordingSink sink;
        sink.stop_at = stop_at;
        FrameDecoder<RecordingSink> decoder(sink);
        const auto first = decoder.feed(input);
        if (first.status == DecodeStatus::Ok) {
            EXPECT_GT(stop_at, 0);
            break;
        }
        ASSERT_EQ(first.status, DecodeStatus::Stopped) << "stop_at " << stop_at;
        ASSERT_EQ(sink.calls, stop_at + 1);
        ASSERT_LE(first.consumed, input.size());
        const auto rest = decoder.feed(std::span<const std::byte>(input).subspan(first.consumed));
        ASSERT_EQ(rest.status, DecodeStatus::Ok);
        ASSERT_EQ(sink.events, whole.events) << "stop_at " << stop_at;
    }
}

TEST(TunnelFrameDecoder, StopsAfterTheEventWhoseHandlerReturnsFalseAndResumes) {
    expect_stop_and_resume(conversation().bytes);
}

TEST(TunnelFrameDecoder, StoppedConsumedEndsRightAfterTheDeliveredFrame) {
    auto b = session_start();
    const size_t after_hello = b.bytes.size();
    b.open(1, StreamProtocol::Tcp, "k");
    const size_t after_open = b.bytes.size();
    b.ping(false, 1);

    RecordingSink sink;
    sink.stop_at = 0;
    FrameDecoder<RecordingSink> decoder(sink);
    auto r = decoder.feed(b.bytes);
    EXPECT_EQ(r.status, DecodeStatus::Stopped);
    EXPECT_EQ(r.consumed, after_hello);

    sink.stop_at = 1;
    r = decoder.feed(std::span<const std::byte>(b.bytes).subspan(after_hello));
    EXPECT_EQ(r.status, DecodeStatus::Stopped);
    EXPECT_EQ(r.consumed, after_open - after_hello);
    EXPECT_TRUE(decoder.at_frame_boundary());
}

TEST(TunnelFrameDecoder, RejectsInputWithoutPreface) {
    const auto out = feed_whole(as_bytes(std::string("\x01garbage bytes", 14)));
    expect_error(out, ErrorCode::BadPreface);
    EXPECT_EQ(out.detail, "not a ferry tunnel (bad preface)");
}

TEST(TunnelFrameDecoder, RejectsPlaintextHttpWithAClearReason) {
    const auto out = feed_whole(as_bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    expect_error(out, ErrorCode::BadPreface);
    EXPECT_EQ(out.detail, "not a ferry tunnel (bad preface: looks like plaintext HTTP)");
    EXPECT_EQ(out.last.consumed, 0U);
}

TEST(TunnelFrameDecoder, RejectsATlsClientHelloWithAClearReason) {
    const auto out = feed_whole(as_bytes(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 9)));
    expect_error(out, ErrorCode::BadPreface);
    EXPECT_EQ(out.detail, "not a ferry tunnel (bad preface: looks like a TLS handshake)");
}

TEST(TunnelFrameDecoder, RejectsAPrefaceThatDivergesLate) {
    // Caught at the seventh byte even when it arrives alone.
    const auto out = feed_chunks(as_bytes("\211FERRY\n\n"), std::vector<size_t>(8, 1));
    expect_error(out, ErrorCode::BadPreface);
    EXPECT_EQ(out.last.consumed, 0U);
}

TEST(TunnelFrameDecoder, RejectsAFirstFrameOtherThanHello) {
    FrameBuilder b;
    b.preface().ping(false, 1);
    expect_error(feed_whole(b.bytes), ErrorCode::ProtocolError);
    FrameBuilder unknown;
    unknown.preface().raw(0, 0x9, 0, 0);
    expect_error(feed_whole(unknown.bytes), ErrorCode::ProtocolError);
}

TEST(TunnelFrameDecoder, RejectsASecondHello) {
    const auto out = feed_whole(session_start().hello().bytes);
    ASSERT_EQ(out.events.size(), 1U);
    expect_error(out, ErrorCode::ProtocolError);
    EXPECT_EQ(out.detail, "second HELLO");
}

TEST(TunnelFrameDecoder, RejectsOversizedFrame) {
    const auto out = feed_whole(session_start().raw(16385, 0x2, 0, 1).bytes);
    expect_error(out, ErrorCode::FrameSizeError);
    EXPECT_EQ(out.detail, "frame length 16385 exceeds max_frame_size 16384");
}

TEST(TunnelFrameDecoder, RejectsOversizedFramesOfUnknownType) {
    expect_error(feed_whole(session_start().raw(1U << 31, 0xee, 0, 0).bytes),
                 ErrorCode::FrameSizeError);
}

TEST(TunnelFrameDecoder, AcceptsFramesUpToTheConfiguredMaxFrameSize) {
    const std::string at_default(kDefaultMaxFrameSize, 'd');
    EXPECT_EQ(feed_whole(session_start().data(1, at_default).bytes).last.status, DecodeStatus::Ok);

    const std::string big(100000, 'b');
    auto b = session_start().data(1, big).goaway(1, ErrorCode::NoError, std::string(90000, 'g'));
    const auto out = feed_chunks(b.bytes, {7000, 50000, 13, 40000, 1}, 1 << 20);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok);
    EXPECT_EQ(out.events.size(), 3U);
    EXPECT_EQ(feed_whole(b.bytes).last.code, ErrorCode::FrameSizeError);
}

TEST(TunnelFrameDecoder, RejectsNonZeroReservedHeaderBytes) {
    const auto out = feed_whole(session_start().raw(0, 0x2, 0, 1, {}, 0x0100).bytes);
    expect_error(out, ErrorCode::ProtocolError);
}

TEST(TunnelFrameDecoder, RejectsTheReservedStreamIdBit) {
    const auto out = feed_whole(session_start().raw(0, 0x2, 0, 0x8000'0001U).bytes);
    expect_error(out, ErrorCode::ProtocolError);
    EXPECT_EQ(out.detail, "reserved stream id bit is set");
}

TEST(TunnelFrameDecoder, RejectsFramesOnTheWrongKindOfStream) {
    const auto four = PayloadBuilder().u32(1).bytes;
    const auto eight = PayloadBuilder().u32(0).u32(0).bytes;
    const auto open = PayloadBuilder().u8(0).u16(0).u16(0).bytes;
    const auto empty_list = PayloadBuilder().u16(0).bytes;
    struct Case {
        uint8_t type;
        uint32_t stream;
        std::vector<std::byte> payload;
    };
    const std::vector<Case> cases = {
        {0x1, 0, open},        // OPEN needs a stream
        {0x2, 0, {}},          // DATA needs a stream
        {0x4, 0, four},        // RESET needs a stream
        {0x5, 1, eight},       // PING is connection-level
        {0x6, 1, eight},       // GOAWAY is connection-level
        {0xa, 0, empty_list},  // OPEN_ACK needs a stream
        {0xb, 0, empty_list},  // TRAILERS needs a stream
    };
    for (const auto& c : cases) {
        const auto out = feed_whole(session_start().frame(c.type, 0, c.stream, c.payload).bytes);
        expect_error(out, ErrorCode::ProtocolError);
    }
    FrameBuilder hello_on_stream;
    hello_on_stream.preface().frame(0x0, 0, 1, PayloadBuilder().u16(1).u16(1).bytes);
    expect_error(feed_whole(hello_on_stream.bytes), ErrorCode::ProtocolError);
}

TEST(TunnelFrameDecoder, RejectsFixedLengthViolations) {
    struct Case {
        uint8_t type;
        uint32_t stream;
        size_t length;
    };
    const std::vector<Case> cases = {
        {0x3, 0, 3}, {0x3, 1, 5}, {0x4, 1, 0}, {0x4, 1, 3}, {0x5, 0, 7}, {0x5, 0, 9},
        {0x6, 0, 7}, {0xa, 1, 0}, {0xa, 1, 1}, {0xb, 1, 0}, {0xb, 1, 1},
    };
    for (const auto& c : cases) {
        const std::vector<std::byte> payload(c.length, std::byte{1});
        const auto out = feed_whole(session_start().frame(c.type, 0, c.stream, payload).bytes);
        expect_error(out, ErrorCode::FrameSizeError);
    }
}

TEST(TunnelFrameDecoder, RejectsAZeroWindowIncrement) {
    const auto out =
        feed_whole(session_start().frame(0x3, 0, 1, PayloadBuilder().u32(0).bytes).bytes);
    expect_error(out, ErrorCode::ProtocolError);
}

TEST(TunnelFrameDecoder, RejectsAWindowIncrementAbove2To31Minus1) {
    const auto max = session_start().window(0, kMaxWindowSize).bytes;
    EXPECT_EQ(feed_whole(max).events.back(), "WINDOW 0 +2147483647");
    const auto out = feed_whole(
        session_start().frame(0x3, 0, 0, PayloadBuilder().u32(0x8000'0000U).bytes).bytes);
    expect_error(out, ErrorCode::ProtocolError);
}

TEST(TunnelFrameDecoder, RejectsMalformedOpen) {
    const std::vector<std::vector<std::byte>> payloads = {
        {},                                                           // empty
        PayloadBuilder().u8(1).u16(5).text("abc").bytes,              // key overruns
        PayloadBuilder().u8(1).u16(1).text("k").u8(0).bytes,          // half a count
        PayloadBuilder().u8(1).u16(0).u16(1).bytes,                   // count without entries
        PayloadBuilder().u8(1).u16(0).u16(1).u16(2).text("n").bytes,  // name overruns
        PayloadBuilder().u8(1).u16(0).u16(1).u16(1).text("n").bytes,  // no value length
        PayloadBuilder().u8(1).u16(0).u16(1).u16(1).text("n").u16(3).bytes,  // value overruns
        PayloadBuilder().u8(1).u16(0).u16(0).u8(0).bytes,                    // trailing byte
        PayloadBuilder().u8(1).u16(0).u16(2).u16(0).u16(0).bytes,            // count too large
    };
    for (size_t i = 0; i < payloads.size(); ++i) {
        SCOPED_TRACE(i);
        const auto out = feed_whole(session_start().frame(0x1, 0, 1, payloads[i]).bytes);
        expect_error(out, ErrorCode::ProtocolError);
        EXPECT_EQ(out.detail.rfind("malformed OPEN", 0), 0U);
    }
}

TEST(TunnelFrameDecoder, DecodesOpenWithAnUnknownProtocol) {
    // v1.1: the session, not the decoder, refuses it (RESET UnsupportedProtocol).
    for (uint8_t protocol : {uint8_t{3}, uint8_t{7}, uint8_t{255}}) {
        const auto payload = PayloadBuilder().u8(protocol).u16(1).text("k").u16(0).bytes;
        const auto out = feed_whole(session_start().frame(0x1, 0, 1, payload).bytes);
        EXPECT_EQ(out.last.status, DecodeStatus::Ok) << out.detail;
        EXPECT_EQ(out.events.back(), "OPEN 1 proto=" + std::to_string(protocol) + " key=k md={}");
    }
}

TEST(TunnelFrameDecoder, AcceptsOpenWithEmptyNamesAndValues) {
    const auto payload =
        PayloadBuilder().u8(0).u16(0).u16(2).u16(0).u16(0).u16(1).text("a").u16(0).bytes;
    const auto out = feed_whole(session_start().frame(0x1, 0, 7, payload).bytes);
    EXPECT_EQ(out.events.back(), "OPEN 7 proto=0 key= md={=;a=;}");
}

TEST(TunnelFrameDecoder, RejectsAVersionRangeWithoutV1) {
    FrameBuilder b;
    b.preface().frame(0x0, 0, 0, PayloadBuilder().u16(2).u16(3).bytes);
    expect_error(feed_whole(b.bytes), ErrorCode::VersionMismatch);
    FrameBuilder inverted;
    inverted.preface().frame(0x0, 0, 0, PayloadBuilder().u16(1).u16(0).bytes);
    expect_error(feed_whole(inverted.bytes), ErrorCode::VersionMismatch);
}

TEST(TunnelFrameDecoder, NegotiatesV1FromAWiderRangeAndDefaultsMissingSettings) {
    FrameBuilder b;
    b.preface().frame(0x0, 0, 0, PayloadBuilder().u16(0).u16(9).bytes);
    const auto out = feed_whole(b.bytes);
    ASSERT_EQ(out.events.size(), 1U);
    EXPECT_EQ(out.events[0],
              "HELLO v1 range=0-9 mfs=16384 isw=262144 cw=16777216 ms=1024 caps=0 node=");
}

TEST(TunnelFrameDecoder, IgnoresUnknownHelloSettingsAndFlags) {
    PayloadBuilder payload;
    payload.u16(1).u16(1);
    payload.u16(0x7777).u16(3).text("abc");  // unknown id with an odd length
    payload.u16(4).u16(4).u32(77);           // MaxStreams
    payload.u16(0).u16(0);                   // id 0 is unknown too
    payload.u16(8).u16(2).u16(9);            // so is 8, the first id after Shards
    FrameBuilder b;
    b.preface().frame(0x0, 0xff, 0, payload.bytes);
    const auto out = feed_whole(b.bytes);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok);
    ASSERT_EQ(out.events.size(), 1U);
    EXPECT_NE(out.events[0].find(" ms=77 "), std::string::npos);
}

TEST(TunnelFrameDecoder, RejectsMalformedHelloSettings) {
    struct Case {
        std::vector<std::byte> settings;
        ErrorCode code;
    };
    const std::vector<Case> cases = {
        {PayloadBuilder().u16(1).bytes, ErrorCode::ProtocolError},  // truncated TLV
        {PayloadBuilder().u16(6).u16(4).text("ab").bytes, ErrorCode::ProtocolError},  // overrun
        {PayloadBuilder().u16(2).u16(2).u16(9).bytes, ErrorCode::ProtocolError},      // u32 as u16
        {PayloadBuilder().u16(6).u16(256).text(std::string(256, 'n')).bytes,
         ErrorCode::ProtocolError},                                                   // NodeName
        {PayloadBuilder().u16(1).u16(4).u32(16383).bytes, ErrorCode::ProtocolError},  // MFS low
        {PayloadBuilder().u16(1).u16(4).u32((1U << 24) + 1).bytes, ErrorCode::ProtocolError},
        {PayloadBuilder().u16(2).u16(4).u32(0x8000'0000U).bytes, ErrorCode::FlowControlError},
        {PayloadBuilder().u16(3).u16(4).u32(0x8000'0000U).bytes, ErrorCode::FlowControlError},
    };
    for (size_t i = 0; i < cases.size(); ++i) {
        SCOPED_TRACE(i);
        auto payload = PayloadBuilder().u16(1).u16(1).bytes;
        payload.insert(payload.end(), cases[i].settings.begin(), cases[i].settings.end());
        FrameBuilder b;
        b.preface().frame(0x0, 0, 0, payload);
        const auto out = feed_whole(b.bytes);
        EXPECT_TRUE(out.events.empty());
        expect_error(out, cases[i].code);
    }
}

TEST(TunnelFrameDecoder, RejectsAHelloTooShortForTheVersionRange) {
    FrameBuilder b;
    b.preface().frame(0x0, 0, 0, PayloadBuilder().u16(1).bytes);
    expect_error(feed_whole(b.bytes), ErrorCode::FrameSizeError);
}

TEST(TunnelFrameDecoder, SkipsUnknownFrameTypes) {
    const std::string payload(3000, 'u');
    auto b =
        session_start().raw(0, 0x7, 0, 0).frame(0xff, 0xff, 5, as_bytes(payload)).ping(true, 7);
    const auto out = feed_chunks(b.bytes, {100, 1000, 1});
    EXPECT_EQ(out.last.status, DecodeStatus::Ok);
    EXPECT_EQ(out.events, (std::vector<std::string>{kDefaultHello, "PING ACK 7"}));
}

TEST(TunnelFrameDecoder, PassesUnknownErrorCodesThrough) {
    const auto out = feed_whole(session_start().reset(1, static_cast<ErrorCode>(0x1234)).bytes);
    EXPECT_EQ(out.events.back(), "RESET 1 Unknown(4660)");
}

TEST(TunnelFrameDecoder, RejectsAGoAwayWithTheReservedStreamIdBitInLastStreamId) {
    const auto payload = PayloadBuilder().u32(0x8000'0000U).u32(0).bytes;
    expect_error(feed_whole(session_start().frame(0x6, 0, 0, payload).bytes),
                 ErrorCode::ProtocolError);
}

TEST(TunnelFrameDecoder, StaysFailedAfterAnError) {
    RecordingSink sink;
    FrameDecoder<RecordingSink> decoder(sink);
    const auto first = decoder.feed(as_bytes("GET /"));
    ASSERT_EQ(first.status, DecodeStatus::Error);
    EXPECT_TRUE(decoder.failed());
    const auto good = session_start().bytes;
    const auto again = decoder.feed(good);
    EXPECT_EQ(again.status, DecodeStatus::Error);
    EXPECT_EQ(again.code, ErrorCode::BadPreface);
    EXPECT_EQ(again.consumed, 0U);
    EXPECT_STREQ(again.detail, first.detail);
    EXPECT_TRUE(sink.events.empty());
}

TEST(TunnelFrameDecoder, KeepsAFormattedDetailValidAfterTheCall) {
    RecordingSink sink;
    FrameDecoder<RecordingSink> decoder(sink);
    const auto bytes = session_start().raw(20000, 0x1, 0, 1).bytes;
    const char* detail = decoder.feed(bytes).detail;
    (void)decoder.feed(bytes);
    EXPECT_STREQ(detail, "frame length 20000 exceeds max_frame_size 16384");
}

TEST(TunnelFrameDecoder, ReportsFrameBoundaries) {
    RecordingSink sink;
    FrameDecoder<RecordingSink> decoder(sink);
    const auto bytes = session_start().data(1, "abc").bytes;
    const std::span<const std::byte> input(bytes);
    EXPECT_FALSE(decoder.at_frame_boundary());
    ASSERT_EQ(decoder.feed(input.first(input.size() - 5)).status, DecodeStatus::Ok);
    EXPECT_TRUE(decoder.hello_received());
    EXPECT_FALSE(decoder.at_frame_boundary());
    ASSERT_EQ(decoder.feed(input.last(5)).status, DecodeStatus::Ok);
    EXPECT_TRUE(decoder.at_frame_boundary());
}

// ---- v1.1: messages, OPEN_ACK, TRAILERS, RESET reasons ----

TEST(TunnelFrameDecoder, DecodesEveryFrameAndFlagOfAV11Conversation) {
    const auto out = feed_whole(conversation_v11().bytes);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok) << out.detail;
    const std::string binary = escaped(all_byte_values());
    const std::vector<std::string> expected = {
        "HELLO v1 range=1-1 mfs=16384 isw=262144 cw=16777216 ms=1024 caps=3 "
        "node=ferry-terminator-3",
        "OPEN 1 proto=1 key=room-42 md={:path=/chat;:subprotocol=chat, superchat;}",
        "OPEN_ACK 1 md={:subprotocol=chat;}",
        "DATA 1 [Text]hello world EOM",
        "DATA 1 " + std::string(3000, 'm') + " EOM",
        "DATA 1  EOM",
        "DATA 1 [Text] EOM",
        "OPEN 3 proto=2 key=orders/Get md={:path=/orders.v1.Orders/Get;}",
        "OPEN_ACK 3 md={:status=200;x-id-bin=" + binary + ";}",
        "DATA 3 [Compressed]" + std::string("\x1f\x8b\x00zipped", 9) + "more EOM",
        "DATA 5 tcp bytes",
        "TRAILERS 3 md={grpc-status=0;x-trace-bin=" + binary + ";=;}",
        "DATA 1 [Close]" + close_body() + " EOM FIN",
        "OPEN 7 proto=7 key=k md={}",
        "RESET 7 UnsupportedProtocol(13) 'protocol 7'",
        "OPEN_ACK 9 md={}",
        "DATA 9 x EOM",
        "DATA 9  FIN",
        "TRAILERS 11 md={}",
        "DATA 5  FIN",
        "RESET 9 Cancel(5)",
    };
    EXPECT_EQ(out.events, expected);
}

TEST(TunnelFrameDecoder, YieldsTheSameV11EventsForEverySplit) {
    expect_split_invariant(conversation_v11().bytes);
}

TEST(TunnelFrameDecoder, StopsAndResumesAtEveryEventOfAV11Conversation) {
    expect_stop_and_resume(conversation_v11().bytes);
}

TEST(TunnelFrameDecoder, DeliversTheKindOnEveryPieceAndEndFlagsOnlyOnTheLast) {
    const auto b = session_start().message(1, "abcdef", MessageKind::Text, true, true);
    const size_t payload_at = b.bytes.size() - 6;
    const DataFlags middle = DataFlags::make(false, false, MessageKind::Text);
    const DataFlags last = DataFlags::make(true, true, MessageKind::Text);
    for (const auto& sizes : every_split(b.bytes.size())) {
        const auto out = feed_chunks(b.bytes, sizes);
        ASSERT_FALSE(out.piece_flags.empty());
        for (size_t i = 0; i + 1 < out.piece_flags.size(); ++i) {
            ASSERT_EQ(out.piece_flags[i], middle) << "piece " << i << ", " << describe_split(sizes);
        }
        ASSERT_EQ(out.piece_flags.back(), last) << describe_split(sizes);
        ASSERT_EQ(out.events.back(), "DATA 1 [Text]abcdef EOM FIN");
    }
    // Byte by byte through the payload: one call per byte.
    const auto bytewise =
        feed_chunks(b.bytes, {payload_at, size_t{1}, size_t{1}, size_t{1}, size_t{1}, size_t{1}});
    EXPECT_EQ(bytewise.piece_flags,
              (std::vector<DataFlags>{middle, middle, middle, middle, middle, last}));
}

TEST(TunnelFrameDecoder, KeepsMessageFlagsWithTheirFrameWhenAMessageSpansFrames) {
    // One Close message in two frames, then a Compressed one, fed across frame boundaries.
    const auto b = session_start()
                       .message(2, "ab", MessageKind::Close, false)
                       .message(2, "cd", MessageKind::Close)
                       .message(2, "ef", MessageKind::Compressed, true, true);
    const auto close = DataFlags::make(false, false, MessageKind::Close);
    const auto close_end = DataFlags::make(false, true, MessageKind::Close);
    const auto compressed = DataFlags::make(false, false, MessageKind::Compressed);
    const auto compressed_end = DataFlags::make(true, true, MessageKind::Compressed);
    for (const auto& sizes : every_split(b.bytes.size())) {
        const auto out = feed_chunks(b.bytes, sizes);
        ASSERT_EQ(out.events, (std::vector<std::string>{kDefaultHello, "DATA 2 [Close]abcd EOM",
                                                        "DATA 2 [Compressed]ef EOM FIN"}))
            << describe_split(sizes);
        // Close pieces up to the one that ends the message, then Compressed pieces up to the one
        // with END_MESSAGE and FIN: no end flag early, no kind missing.
        const auto& flags = out.piece_flags;
        const auto end = std::find(flags.begin(), flags.end(), close_end);
        ASSERT_NE(end, flags.end()) << describe_split(sizes);
        ASSERT_TRUE(std::all_of(flags.begin(), end, [&](DataFlags f) { return f == close; }))
            << describe_split(sizes);
        ASSERT_EQ(flags.back(), compressed_end) << describe_split(sizes);
        ASSERT_TRUE(std::all_of(end + 1, flags.end() - 1, [&](DataFlags f) {
            return f == compressed;
        })) << describe_split(sizes);
    }
}

TEST(TunnelFrameDecoder, DeliversAnEmptyMessageAsOneEmptyPieceWithItsFlags) {
    const auto out = feed_whole(session_start().message(3, "", MessageKind::Text).bytes);
    EXPECT_EQ(out.data_calls, 1U);
    EXPECT_EQ(out.piece_flags,
              (std::vector<DataFlags>{DataFlags::make(false, true, MessageKind::Text)}));
    EXPECT_EQ(out.events.back(), "DATA 3 [Text] EOM");
}

TEST(TunnelFrameDecoder, ClearsReservedDataFlagBitsAndPassesReservedKindsThrough) {
    const auto b = session_start().frame(0x2, 0xff, 1, as_bytes("abc"));
    for (const auto& sizes : every_split(b.bytes.size())) {
        const auto out = feed_chunks(b.bytes, sizes);
        ASSERT_FALSE(out.piece_flags.empty());
        for (size_t i = 0; i + 1 < out.piece_flags.size(); ++i) {
            ASSERT_EQ(out.piece_flags[i].bits, 0xf0) << describe_split(sizes);
        }
        ASSERT_EQ(out.piece_flags.back().bits, 0xf3) << describe_split(sizes);
        EXPECT_EQ(out.piece_flags.back().kind(), static_cast<MessageKind>(15));
    }
    const auto empty = feed_whole(session_start().frame(0x2, 0x0c, 1, {}).bytes);
    EXPECT_EQ(empty.piece_flags, (std::vector<DataFlags>{DataFlags{}}));
}

TEST(TunnelFrameDecoder, DeliversOnlyFinFlagsForAV1ByteStream) {
    // No new flags or types: events and flags are exactly what a v1 decoder delivered.
    const auto input = conversation().bytes;
    for (const auto& sizes : every_split(input.size(), 20)) {
        const auto out = feed_chunks(input, sizes);
        for (const DataFlags f : out.piece_flags) {
            ASSERT_EQ(f.bits & ~kFlagFin, 0) << describe_split(sizes);
        }
        ASSERT_EQ(std::count_if(out.piece_flags.begin(), out.piece_flags.end(),
                                [](DataFlags f) { return f.fin(); }),
                  2);  // DATA 3 "" FIN and DATA 1 "last words" FIN
    }
}

TEST(TunnelFrameDecoder, DecodesOpenAckAndTrailersWithBinaryValuesAndEmptyLists) {
    const std::string binary = all_byte_values();
    const std::string nul_name("a\0b", 3);
    auto b = session_start()
                 .open_ack(1)
                 .open_ack(3, {{"x-bin", binary}, {nul_name, ""}, {"x-bin", "again"}})
                 .trailers(3, {{"grpc-status", "13"}, {"grpc-message", "boom"}, {"t-bin", binary}})
                 .trailers(1);
    const auto out = feed_whole(b.bytes);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok) << out.detail;
    const std::vector<std::string> expected = {
        kDefaultHello,
        "OPEN_ACK 1 md={}",
        "OPEN_ACK 3 md={x-bin=" + escaped(binary) + ";a\\x00b=;x-bin=again;}",
        "TRAILERS 3 md={grpc-status=13;grpc-message=boom;t-bin=" + escaped(binary) + ";}",
        "TRAILERS 1 md={}",
    };
    EXPECT_EQ(out.events, expected);
    expect_split_invariant(b.bytes);
}

TEST(TunnelFrameDecoder, HandsTheSinkMetadataValuesAsRawBytes) {
    struct ValueSink : RecordingSink {
        std::vector<std::string> values;
        bool on_trailers(uint32_t id, const MetadataView& md) noexcept {
            for (const auto& [name, value] : md) {
                values.emplace_back(value);
            }
            return RecordingSink::on_trailers(id, md);
        }
    };
    const std::string binary = all_byte_values();
    const auto b = session_start().trailers(5, {{"x-bin", binary}, {"y", ""}});
    ValueSink sink;
    FrameDecoder<ValueSink> decoder(sink);
    ASSERT_EQ(decoder.feed(b.bytes).status, DecodeStatus::Ok);
    EXPECT_EQ(sink.values, (std::vector<std::string>{binary, ""}));
}

TEST(TunnelFrameDecoder, IgnoresFlagsOnOpenAckAndTrailers) {
    const auto list = PayloadBuilder().u16(1).u16(1).text("a").u16(1).text("b").bytes;
    const auto out =
        feed_whole(session_start().frame(0xa, 0xff, 1, list).frame(0xb, 0x01, 1, list).bytes);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok) << out.detail;
    EXPECT_EQ(out.events, (std::vector<std::string>{kDefaultHello, "OPEN_ACK 1 md={a=b;}",
                                                    "TRAILERS 1 md={a=b;}"}));
}

TEST(TunnelFrameDecoder, RejectsMalformedOpenAckAndTrailersMetadata) {
    const std::vector<std::vector<std::byte>> lists = {
        PayloadBuilder().u16(1).bytes,                                    // count without entries
        PayloadBuilder().u16(2).u16(0).u16(0).bytes,                      // count too large
        PayloadBuilder().u16(1).u16(2).text("n").bytes,                   // name overruns
        PayloadBuilder().u16(1).u16(1).text("n").bytes,                   // no value length
        PayloadBuilder().u16(1).u16(1).text("n").u8(0).bytes,             // half a value length
        PayloadBuilder().u16(1).u16(1).text("n").u16(3).text("v").bytes,  // value overruns
        PayloadBuilder().u16(0).u8(0).bytes,                              // trailing byte
        PayloadBuilder().u16(1).u16(0).u16(0).text("xyz").bytes,          // trailing bytes
        PayloadBuilder().u16(0xffff).u16(0).u16(0).bytes,                 // count far too large
    };
    for (const auto& [type, name] : {std::pair<uint8_t, std::string>{0xa, "malformed OPEN_ACK"},
                                     {0xb, "malformed TRAILERS"}}) {
        for (size_t i = 0; i < lists.size(); ++i) {
            SCOPED_TRACE(name + " case " + std::to_string(i));
            const auto input = session_start().frame(type, 0, 1, lists[i]).bytes;
            const auto out = feed_whole(input);
            expect_error(out, ErrorCode::ProtocolError);
            EXPECT_EQ(out.detail.rfind(name, 0), 0U) << out.detail;
            EXPECT_EQ(out.events, (std::vector<std::string>{kDefaultHello}));
            // The same verdict when the payload is collected byte by byte.
            const auto bytewise = feed_chunks(input, std::vector<size_t>(input.size(), 1));
            EXPECT_EQ(bytewise.last.code, ErrorCode::ProtocolError);
            EXPECT_EQ(bytewise.detail, out.detail);
        }
    }
}

TEST(TunnelFrameDecoder, RejectsOpenAckAndTrailersTooShortForTheCount) {
    for (uint8_t type : {uint8_t{0xa}, uint8_t{0xb}}) {
        for (size_t length : {size_t{0}, size_t{1}}) {
            const std::vector<std::byte> payload(length, std::byte{0});
            const auto out = feed_whole(session_start().frame(type, 0, 1, payload).bytes);
            expect_error(out, ErrorCode::FrameSizeError);
            EXPECT_NE(out.detail.find("shorter than 2 bytes"), std::string::npos) << out.detail;
        }
    }
}

TEST(TunnelFrameDecoder, DecodesResetWithAndWithoutReason) {
    const std::string longest(kMaxResetReasonSize, 'r');
    // Beyond the sender's convention but within MaxFrameSize: still accepted.
    const std::string longer(5000, 'z');
    auto b = session_start()
                 .reset(1, ErrorCode::Cancel)
                 .reset(3, ErrorCode::ConnectRefused, "connect: connection refused")
                 .reset(5, ErrorCode::UpstreamReset, longest)
                 .frame(0x4, 0, 7, PayloadBuilder().u32(10).text(longer).bytes)
                 .reset(9, static_cast<ErrorCode>(99), std::string("bin\0\xff", 5));
    const auto out = feed_whole(b.bytes);
    EXPECT_EQ(out.last.status, DecodeStatus::Ok) << out.detail;
    const std::vector<std::string> expected = {
        kDefaultHello,
        "RESET 1 Cancel(5)",
        "RESET 3 ConnectRefused(6) 'connect: connection refused'",
        "RESET 5 UpstreamReset(7) '" + longest + "'",
        "RESET 7 Shutdown(10) '" + longer + "'",
        "RESET 9 Unknown(99) 'bin\\x00\\xff'",
    };
    EXPECT_EQ(out.events, expected);
    expect_split_invariant(b.bytes);
}

TEST(TunnelFrameDecoder, RejectsAResetShorterThanFourBytes) {
    for (size_t length : {size_t{0}, size_t{1}, size_t{3}}) {
        const std::vector<std::byte> payload(length, std::byte{0});
        const auto out = feed_whole(session_start().frame(0x4, 0, 1, payload).bytes);
        expect_error(out, ErrorCode::FrameSizeError);
        EXPECT_EQ(out.detail, "RESET payload shorter than 4 bytes");
    }
}

TEST(TunnelFrameDecoder, SkipsTypesStillUnassignedInV11) {
    auto b = session_start()
                 .raw(0, 0x9, 0, 0)
                 .frame(0xc, 0, 1, as_bytes("future"))
                 .frame(0xef, 0xff, 0, as_bytes("x"))
                 .open_ack(1);
    const auto out = feed_chunks(b.bytes, {40, 3});
    EXPECT_EQ(out.last.status, DecodeStatus::Ok);
    EXPECT_EQ(out.events, (std::vector<std::string>{kDefaultHello, "OPEN_ACK 1 md={}"}));
}

}  // namespace
}  // namespace ferry::proto::tunnel
