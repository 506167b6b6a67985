#include "ferry/proto/ws/frame_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace ferry::proto::ws {
namespace {

using testing::as_bytes;
using testing::client_options;
using testing::close_body;
using testing::expect_error;
using testing::expect_events;
using testing::expect_split_invariant;
using testing::feed_whole;
using testing::kFin;
using testing::masked;
using testing::raw_frame;
using testing::RecordingSink;
using testing::server_options;
using testing::unmasked;

constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kClose = 0x8;
constexpr uint8_t kPing = 0x9;
constexpr uint8_t kPong = 0xA;

std::string bytes(std::initializer_list<int> values) {
    std::string s;
    for (int v : values) {
        s += static_cast<char>(v);
    }
    return s;
}

// "κόσμε" (Autobahn 6.x, from Markus Kuhn's UTF-8 test file).
const std::string kKosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

// --- RFC 6455 §5.7 examples ---------------------------------------------------------------------

TEST(WsFrameParser, ParsesTheRfcUnmaskedHelloAsAClient) {
    const std::string frame = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    expect_events(frame, client_options(), {"Text:Hello FIN"});
}

TEST(WsFrameParser, ParsesTheRfcMaskedHelloAsAServerAndUnmasksInPlace) {
    const std::string frame =
        bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    expect_events(frame, server_options(), {"Text:Hello FIN"});
    const auto out = feed_whole(frame, server_options());
    EXPECT_EQ(out.buffer.substr(6), "Hello");  // the payload was unmasked where it lay
    EXPECT_EQ(out.consumed, frame.size());
}

TEST(WsFrameParser, ParsesTheRfcFragmentedHello) {
    const std::string frames =
        bytes({0x01, 0x03, 0x48, 0x65, 0x6c}) + bytes({0x80, 0x02, 0x6c, 0x6f});
    expect_events(frames, client_options(), {"Text:Hello FIN"});
}

TEST(WsFrameParser, DeliversTheRfcPingAndMaskedPong) {
    expect_events(bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), client_options(),
                  {"Ping:Hello"});
    expect_events(bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}),
                  server_options(), {"Pong:Hello"});
}

TEST(WsFrameParser, ParsesThe256ByteBinaryFrameWithA16BitLength) {
    std::string payload;
    for (int i = 0; i < 256; ++i) {
        payload += static_cast<char>(i);
    }
    const std::string frame = bytes({0x82, 0x7e, 0x01, 0x00}) + payload;
    ASSERT_EQ(frame, unmasked(kFin | kBinary, payload));
    expect_events(frame, client_options(), {"Binary:" + testing::escaped(payload) + " FIN"});
    expect_events(masked(kFin | kBinary, payload), server_options(),
                  {"Binary:" + testing::escaped(payload) + " FIN"});
}

TEST(WsFrameParser, ParsesThe64KiBBinaryFrameWithA64BitLength) {
    std::string payload(65536, '\0');
    for (size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<char>('a' + i % 26);
    }
    const std::string frame = bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}) + payload;
    ASSERT_EQ(frame, unmasked(kFin | kBinary, payload));
    expect_events(frame, client_options(), {"Binary:" + payload + " FIN"});
    // Masked, the key phase runs across every piece boundary.
    const std::string masked_frame = masked(kFin | kBinary, payload);
    expect_events(masked_frame, server_options(), {"Binary:" + payload + " FIN"});
    EXPECT_EQ(feed_whole(masked_frame, server_options()).buffer.substr(14), payload);
}

// --- Messages, fragments and control frames ---------------------------------------------------

TEST(WsFrameParser, InterleavesControlFramesBetweenFragments) {
    // Autobahn 5.6-5.9: pings and pongs between the fragments of a message.
    const std::string input = masked(kText, "frag") + masked(kFin | kPing, "ping me") +
                              masked(0x0, "ment") + masked(kFin | kPong, "") +
                              masked(kFin | 0x0, "ed") + masked(kFin | kBinary, "b");
    expect_events(input, server_options(),
                  {"Text:frag", "Ping:ping me", "...:ment", "Pong:", "...:ed FIN", "Binary:b FIN"});
}

TEST(WsFrameParser, DeliversEmptyMessagesAndSkipsEmptyFragments) {
    const std::string input = masked(kFin | kText, "") + masked(kBinary, "") + masked(0x0, "x") +
                              masked(0x0, "") + masked(kFin | 0x0, "") + masked(kText, "") +
                              masked(kFin | 0x0, "") + masked(kFin | kPing, "");
    expect_events(input, server_options(), {"Text: FIN", "Binary:x FIN", "Text: FIN", "Ping:"});
}

TEST(WsFrameParser, ParsesManyMessagesBackToBack) {
    std::string input;
    std::vector<std::string> events;
    for (size_t size : std::vector<size_t>{0, 1, 3, 4, 5, 7, 8, 9, 125, 126, 127, 300, 65535}) {
        std::string payload(size, 'p');
        for (size_t i = 0; i < size; ++i) {
            payload[i] = static_cast<char>('A' + (i * 7 + size) % 26);
        }
        input += masked(kFin | (size % 2 == 0 ? kText : kBinary), payload);
        events.push_back((size % 2 == 0 ? "Text:" : "Binary:") + payload + " FIN");
    }
    expect_events(input, server_options(), events);
}

TEST(WsFrameParser, AcceptsNonMinimalLengthEncodings) {
    // RFC 6455 §5.2 asks senders for the minimal form; receivers gain nothing by refusing others.
    expect_events(masked(kFin | kText, "tiny", 16) + masked(kFin | kBinary, "", 64),
                  server_options(), {"Text:tiny FIN", "Binary: FIN"});
    expect_events(unmasked(kFin | kText, "x", 64) + unmasked(kFin | kText, "y", 16),
                  client_options(), {"Text:x FIN", "Text:y FIN"});
}

TEST(WsFrameParser, ValidatesUtf8AcrossFragmentsAndSplits) {
    // Autobahn 6.2.3/6.2.4: a multilingual message sent one byte per frame, so every sequence
    // straddles frames.
    const std::string text =
        "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!" + kKosme +
        "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
    std::string input;
    for (size_t i = 0; i < text.size(); ++i) {
        const uint8_t op = i == 0 ? kText : 0x0;
        input += masked((i + 1 == text.size() ? kFin : 0) | op, text.substr(i, 1));
    }
    expect_events(input, server_options(), {"Text:" + testing::escaped(text) + " FIN"});
}

TEST(WsFrameParser, BinaryMessagesAreNotUtf8Checked) {
    const std::string junk = "\xff\xfe\xc0\xaf\xed\xa0\x80";
    expect_events(masked(kFin | kBinary, junk), server_options(),
                  {"Binary:" + testing::escaped(junk) + " FIN"});
}

TEST(WsFrameParser, ReportsMessagesOfExactlyMaxMessageSize) {
    ParserOptions options;
    options.max_message_size = 10;
    expect_events(masked(kText, "12345") + masked(kFin | 0x0, "67890"), options,
                  {"Text:1234567890 FIN"});
}

TEST(WsFrameParser, AcceptsControlPayloadsUpTo125Bytes) {
    const std::string big(125, 'z');
    expect_events(masked(kFin | kPing, big) + masked(kFin | kPong, big), server_options(),
                  {"Ping:" + big, "Pong:" + big});
}

// --- Close --------------------------------------------------------------------------------------

TEST(WsFrameParser, StopsAfterACloseFrame) {
    const std::string input =
        masked(kFin | kClose, close_body(1000, "bye")) + masked(kFin | kText, "after close");
    const auto out = expect_split_invariant(input, server_options());
    EXPECT_EQ(out.status, ParseStatus::Closed);
    EXPECT_EQ(out.events, std::vector<std::string>{"Close:\\x03\\xe8bye"});
    EXPECT_EQ(out.consumed, 6U + 5U);
}

TEST(WsFrameParser, AcceptsAnEmptyCloseAndValidCloseCodes) {
    expect_events(masked(kFin | kClose, ""), server_options(), {"Close:"}, ParseStatus::Closed);
    // Autobahn 7.7.x, the IANA additions 1012-1014, and the edges of 3000-4999.
    for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
                     3999, 4000, 4999}) {
        const auto out = feed_whole(masked(kFin | kClose, close_body(static_cast<uint16_t>(code))),
                                    server_options());
        EXPECT_EQ(out.status, ParseStatus::Closed) << code << ": " << out.detail;
    }
    // A close inside a fragmented message ends it too.
    expect_events(masked(kText, "half") + masked(kFin | kClose, close_body(1001, "gone")),
                  server_options(), {"Text:half", "Close:\\x03\\xe9gone"}, ParseStatus::Closed);
}

TEST(WsFrameParser, RejectsInvalidCloseCodes) {
    // Autobahn 7.9.x, 1015 (never on the wire) and 7.13.x (5000, 65535).
    for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        const std::string frame = masked(kFin | kClose, close_body(static_cast<uint16_t>(code)));
        expect_error(frame, server_options(), CloseCode::ProtocolError, frame.size());
    }
}

TEST(WsFrameParser, RejectsAOneByteClosePayloadFromItsHeader) {
    const std::string frame = masked(kFin | kClose, "x");
    expect_error(frame, server_options(), CloseCode::ProtocolError, 2);
}

TEST(WsFrameParser, RejectsACloseReasonThatIsNotUtf8) {
    // Autobahn 7.5.1.
    const std::string frame =
        masked(kFin | kClose, close_body(1000, kKosme + "\xed\xa0\x80" + "edited"));
    expect_error(frame, server_options(), CloseCode::InvalidPayload, frame.size());
}

TEST(WsFrameParser, ParsesClosePayloads) {
    CloseInfo info{};
    ASSERT_EQ(parse_close_payload({}, &info).detail, nullptr);
    EXPECT_EQ(info.code, CloseCode::NoStatusReceived);
    EXPECT_EQ(info.reason, "");
    const std::string body = close_body(4321, "d\xc3\xa9j\xc3\xa0 vu");
    ASSERT_EQ(parse_close_payload(as_bytes(body), &info).detail, nullptr);
    EXPECT_EQ(static_cast<int>(info.code), 4321);
    EXPECT_EQ(info.reason, "d\xc3\xa9j\xc3\xa0 vu");

    info = {CloseCode::GoingAway, "untouched"};
    FrameError e = parse_close_payload(as_bytes("\x03"), &info);
    EXPECT_EQ(e.code, CloseCode::ProtocolError);
    EXPECT_NE(e.detail, nullptr);
    EXPECT_EQ(info.reason, "untouched");
    e = parse_close_payload(as_bytes(close_body(1000, "\xc3")), &info);
    EXPECT_EQ(e.code, CloseCode::InvalidPayload);
    e = parse_close_payload(as_bytes(close_body(1006)), &info);
    EXPECT_EQ(e.code, CloseCode::ProtocolError);
}

// --- Header errors: each fails at the byte that shows it ---------------------------------------

TEST(WsFrameParser, RejectsReservedOpcodes) {
    // Autobahn 4.1.x / 4.2.x, after a valid message so the events before the error show too.
    for (int op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
        const std::string ok = masked(kFin | kText, "ok");
        const std::string input = ok + masked(kFin | op, "xyz") + masked(kFin | kPing, "");
        const std::string detail = expect_error(input, server_options(), CloseCode::ProtocolError,
                                                ok.size() + 2, {"Text:ok FIN"});
        EXPECT_EQ(detail, "reserved opcode");
    }
}

TEST(WsFrameParser, RejectsRsvBitsWithoutANegotiatedExtension) {
    // Autobahn 3.x: RSV1-3 on text, binary, continuation and control frames.
    for (int rsv : {0x40, 0x20, 0x10, 0x70}) {
        for (uint8_t op : {kText, kBinary, kPing, kClose}) {
            expect_error(masked(kFin | rsv | op, "Hello"), server_options(),
                         CloseCode::ProtocolError, 2);
        }
        const std::string first = masked(kText, "a");
        expect_error(first + masked(kFin | rsv, "b"), server_options(), CloseCode::ProtocolError,
                     first.size() + 2, {"Text:a"});
    }
}

TEST(WsFrameParser, PassesRsvBitsOfDataFramesWhenAnExtensionAllowsThem) {
    ParserOptions options;
    options.allow_rsv = true;
    // A compressed text message is the extension's encoding, not UTF-8: not checked here.
    const std::string compressed("\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
    expect_events(masked(kFin | 0x40 | kText, compressed) + masked(kFin | kText, "plain"), options,
                  {"Text:" + testing::escaped(compressed) + " FIN", "Text:plain FIN"});
    // Plain text is still checked, and control frames still may not carry RSV bits.
    expect_error(masked(kFin | kText, "\xff"), options, CloseCode::InvalidPayload, 7, {"Text:"},
                 true);
    expect_error(masked(kFin | 0x40 | kPing, ""), options, CloseCode::ProtocolError, 2);

    FrameParser parser(options);
    RecordingSink sink;
    std::string frame = masked(kFin | 0x40 | kBinary, "z");
    std::span<std::byte> input(reinterpret_cast<std::byte*>(frame.data()), frame.size());
    sink.chunk = input;
    ASSERT_EQ(parser.feed(input.first(6), sink).status, ParseStatus::NeedMore);
    EXPECT_EQ(parser.message_rsv(), 0x40);
    EXPECT_TRUE(parser.in_message());
    EXPECT_FALSE(parser.at_frame_boundary());
    ASSERT_EQ(parser.feed(input.subspan(6), sink).status, ParseStatus::NeedMore);
    EXPECT_FALSE(parser.in_message());
    EXPECT_TRUE(parser.at_frame_boundary());
}

TEST(WsFrameParser, RejectsFragmentedControlFrames) {
    // Autobahn 5.1 / 5.2.
    expect_error(masked(kPing, "fragment1"), server_options(), CloseCode::ProtocolError, 2);
    expect_error(masked(kPong, "fragment1"), server_options(), CloseCode::ProtocolError, 2);
    expect_error(masked(kClose, ""), server_options(), CloseCode::ProtocolError, 2);
}

TEST(WsFrameParser, RejectsControlFramesLongerThan125Bytes) {
    // Autobahn 2.5: a 126-byte ping, whatever the length encoding.
    const std::string big(126, 'x');
    expect_error(masked(kFin | kPing, big), server_options(), CloseCode::ProtocolError, 2);
    expect_error(masked(kFin | kPong, "short", 16), server_options(), CloseCode::ProtocolError, 2);
    expect_error(unmasked(kFin | kClose, "", 64), client_options(), CloseCode::ProtocolError, 2);
}

TEST(WsFrameParser, ServerRejectsUnmaskedFramesAndClientRejectsMaskedOnes) {
    expect_error(unmasked(kFin | kText, "Hello"), server_options(), CloseCode::ProtocolError, 2);
    expect_error(unmasked(kFin | kPing, ""), server_options(), CloseCode::ProtocolError, 2);
    expect_error(masked(kFin | kText, "Hello"), client_options(), CloseCode::ProtocolError, 2);
    expect_error(masked(kFin | kClose, ""), client_options(), CloseCode::ProtocolError, 2);
}

TEST(WsFrameParser, RejectsAContinuationWithoutAMessage) {
    // Autobahn 5.3-5.5 family: a continuation first, or after a finished message.
    expect_error(masked(kFin | 0x0, "x"), server_options(), CloseCode::ProtocolError, 2);
    const std::string done = masked(kFin | kText, "done");
    expect_error(done + masked(0x0, "y"), server_options(), CloseCode::ProtocolError,
                 done.size() + 2, {"Text:done FIN"});
}

TEST(WsFrameParser, RejectsANewMessageInsideAFragmentedOne) {
    const std::string first = masked(kText, "frag");
    for (uint8_t op : {kText, kBinary}) {
        for (uint8_t fin : {uint8_t{0}, kFin}) {
            expect_error(first + masked(fin | op, "new"), server_options(),
                         CloseCode::ProtocolError, first.size() + 2, {"Text:frag"});
        }
    }
}

TEST(WsFrameParser, RejectsA64BitLengthWithTheTopBitSet) {
    const std::string frame = bytes({0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4});
    expect_error(frame, server_options(), CloseCode::ProtocolError, 14);
    expect_error(bytes({0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
                 client_options(), CloseCode::ProtocolError, 10);
}

TEST(WsFrameParser, RejectsMessagesOverMaxMessageSizeFromTheHeader) {
    ParserOptions options;
    options.max_message_size = 10;
    // One frame announcing 11 bytes fails before any payload is read.
    const std::string big = masked(kFin | kBinary, "01234567890");
    expect_error(big, options, CloseCode::MessageTooBig, 6);
    // Fragments: the frame that takes the total over the limit fails at its header.
    const std::string a = masked(kText, "123456");
    const std::string b = masked(0x0, "7890");
    expect_error(a + b + masked(kFin | 0x0, "x"), options, CloseCode::MessageTooBig,
                 a.size() + b.size() + 6, {"Text:1234567890"});
    // A 64-bit length near 2^63 cannot overflow the running total.
    const std::string huge =
        bytes({0x00, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4});
    expect_error(a + huge, options, CloseCode::MessageTooBig, a.size() + 14, {"Text:123456"});
    // Control frames do not count.
    expect_events(masked(kText, "1234567890") + masked(kFin | kPing, "0123456789abc") +
                      masked(kFin | 0x0, ""),
                  options, {"Text:1234567890", "Ping:0123456789abc", "...: FIN"});
}

// --- UTF-8 in text messages ---------------------------------------------------------------------

TEST(WsFrameParser, FailsFastOnInvalidUtf8InAFragment) {
    // Autobahn 6.4.1: the second of three fragments holds U+110000; the error comes at its
    // second byte, before the third fragment is read.
    const std::string f1 = masked(kText, kKosme);
    const std::string f2 = masked(0x0, "\xf4\x90\x80\x80");
    const std::string f3 = masked(kFin | 0x0, "edited");
    expect_error(f1 + f2 + f3, server_options(), CloseCode::InvalidPayload, f1.size() + 6 + 2,
                 {"Text:" + testing::escaped(kKosme)}, true);
}

TEST(WsFrameParser, FailsFastOnInvalidUtf8InsideOneFrame) {
    // Autobahn 6.4.3/6.4.4: one frame whose payload is invalid from byte 12 (a surrogate) on; the
    // error comes at that byte however the frame is cut, before the rest arrives.
    const std::string payload = kKosme + "\xed\xa0\x80" + "edited";
    const std::string frame = masked(kFin | kText, payload);
    expect_error(frame, server_options(), CloseCode::InvalidPayload, 6 + 12 + 1, {"Text:"}, true);
    expect_error(unmasked(kFin | kText, payload), client_options(), CloseCode::InvalidPayload,
                 2 + 12 + 1, {"Text:"}, true);
}

TEST(WsFrameParser, RejectsOverlongsSurrogatesAndCodePointsAboveTheMaximum) {
    // Autobahn 6.8-6.11 style: each invalid form alone in a one-frame text message; `at` is the
    // index of the byte that gives it away.
    struct Case {
        std::string payload;
        size_t at;
    };
    for (const Case& c : std::vector<Case>{{"\xc0\xaf", 0},
                                           {"\xe0\x80\xaf", 1},
                                           {"\xf0\x80\x80\xaf", 1},
                                           {"\xf8\x88\x80\x80\x80", 0},
                                           {"\xed\xa0\x80", 1},
                                           {"\xed\xbf\xbf", 1},
                                           {"\xf4\x90\x80\x80", 1},
                                           {"\xfe", 0},
                                           {"\xff", 0},
                                           {"ab\x80", 2},
                                           {"\xc2\x41", 1},
                                           {"\xe1\x80\xc0", 2}}) {
        expect_error(masked(kFin | kText, c.payload), server_options(), CloseCode::InvalidPayload,
                     6 + c.at + 1, {"Text:"}, true);
    }
}

TEST(WsFrameParser, RejectsATextMessageThatEndsInsideASequence) {
    // Autobahn 6.3.2 / 6.6.x: truncated at the end of the message, in one frame or across two.
    const std::string one = masked(kFin | kText, kKosme.substr(0, 10));
    expect_error(one, server_options(), CloseCode::InvalidPayload, one.size(), {"Text:"}, true);
    const std::string a = masked(kText, "ok\xe2");
    const std::string b = masked(kFin | 0x0, "\x82");
    expect_error(a + b, server_options(), CloseCode::InvalidPayload, a.size() + b.size(),
                 {"Text:ok\\xe2"}, true);
    // A control frame between fragments does not reset the sequence in progress.
    const std::string ping = masked(kFin | kPing, "p");
    expect_events(a + ping + masked(kFin | 0x0, "\x82\xac"), server_options(),
                  {"Text:ok\\xe2", "Ping:p", "...:\\x82\\xac FIN"});
}

// --- Feeding and stopping -----------------------------------------------------------------------

TEST(WsFrameParser, StopsWhenTheSinkAsksAndLeavesTheRestMasked) {
    std::string input = masked(kFin | kText, "first") + masked(kFin | kText, "second");
    const std::string original = input;
    std::span<std::byte> span(reinterpret_cast<std::byte*>(input.data()), input.size());
    FrameParser parser;
    RecordingSink sink;
    sink.chunk = span;
    sink.stop_every = 1;
    ParseResult r = parser.feed(span, sink);
    ASSERT_EQ(r.status, ParseStatus::Stopped);
    EXPECT_EQ(r.consumed, 11U);
    EXPECT_EQ(input.substr(11), original.substr(11));
    EXPECT_EQ(sink.events, std::vector<std::string>{"Text:first FIN"});
    sink.chunk = span.subspan(r.consumed);
    r = parser.feed(span.subspan(r.consumed), sink);
    ASSERT_EQ(r.status, ParseStatus::Stopped);
    EXPECT_EQ(r.consumed, 12U);
    EXPECT_EQ(sink.events.back(), "Text:second FIN");
    EXPECT_TRUE(parser.at_frame_boundary());
    r = parser.feed({}, sink);
    EXPECT_EQ(r.status, ParseStatus::NeedMore);
    EXPECT_EQ(r.consumed, 0U);
}

TEST(WsFrameParser, ParsesTheSameFramesAsServerAndAsClient) {
    const std::vector<std::pair<uint8_t, std::string>> frames = {
        {kText, "He"},        {kFin | kPing, "?"}, {kFin | 0x0, "llo"},
        {kFin | kBinary, ""}, {kFin | kPong, "!"}, {kFin | kClose, close_body(3000, "app")},
    };
    std::string from_client;
    std::string from_server;
    for (const auto& [b0, payload] : frames) {
        from_client += masked(b0, payload);
        from_server += unmasked(b0, payload);
    }
    const std::vector<std::string> events = {"Text:He",     "Ping:?", "...:llo FIN",
                                             "Binary: FIN", "Pong:!", "Close:\\x0b\\xb8app"};
    expect_events(from_client, server_options(), events, ParseStatus::Closed);
    expect_events(from_server, client_options(), events, ParseStatus::Closed);
}

TEST(WsFrameParser, MasksWithEveryKeyByteAndPhase) {
    // A key with distinct bytes and payloads of every length mod 8 catch a wrong phase.
    const MaskKey key = {std::byte{0x01}, std::byte{0x80}, std::byte{0x5a}, std::byte{0xff}};
    std::string input;
    std::vector<std::string> events;
    for (size_t size = 1; size <= 19; ++size) {
        std::string payload(size, ' ');
        for (size_t i = 0; i < size; ++i) {
            payload[i] = static_cast<char>('a' + (i + size) % 26);
        }
        input += raw_frame(kFin | kBinary, payload, key);
        events.push_back("Binary:" + payload + " FIN");
    }
    expect_events(input, server_options(), events);
}

}  // namespace
}  // namespace ferry::proto::ws
