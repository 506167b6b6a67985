#include "ferry/proto/tunnel/frame_decoder.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace ferry::proto::tunnel {
namespace {

using testing::as_bytes;
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
    struct FinSink : RecordingSink {
        std::vector<bool> fins;
        bool on_data(uint32_t id, std::span<const std::byte> piece, bool fin) noexcept {
            fins.push_back(fin);
            return RecordingSink::on_data(id, piece, fin);
        }
    };
    auto b = session_start().data(1, "abcdef", true);
    FinSink sink;
    FrameDecoder<FinSink> decoder(sink);
    const std::span<const std::byte> input(b.bytes);
    const size_t split = input.size() - 3;
    ASSERT_EQ(decoder.feed(input.first(split)).status, DecodeStatus::Ok);
    ASSERT_EQ(decoder.feed(input.subspan(split)).status, DecodeStatus::Ok);
    EXPECT_EQ(sink.fins, (std::vector<bool>{false, true}));
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

TEST(TunnelFrameDecoder, StopsAfterTheEventWhoseHandlerReturnsFalseAndResumes) {
    const auto input = conversation().bytes;
    const auto whole = feed_whole(input);
    // Stop at every event in turn; feeding the rest must complete the same sequence.
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
    struct Case {
        uint8_t type;
        uint32_t stream;
        std::vector<std::byte> payload;
    };
    const std::vector<Case> cases = {
        {0x1, 0, open},   // OPEN needs a stream
        {0x2, 0, {}},     // DATA needs a stream
        {0x4, 0, four},   // RESET needs a stream
        {0x5, 1, eight},  // PING is connection-level
        {0x6, 1, eight},  // GOAWAY is connection-level
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
        {0x3, 0, 3}, {0x3, 1, 5}, {0x4, 1, 0}, {0x4, 1, 8}, {0x5, 0, 7}, {0x5, 0, 9}, {0x6, 0, 7},
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

TEST(TunnelFrameDecoder, RejectsOpenWithAnUnknownProtocol) {
    const auto payload = PayloadBuilder().u8(3).u16(0).u16(0).bytes;
    expect_error(feed_whole(session_start().frame(0x1, 0, 1, payload).bytes),
                 ErrorCode::ProtocolError);
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

}  // namespace
}  // namespace ferry::proto::tunnel
