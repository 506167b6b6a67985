// WsEchoSession and WsClient talking to each other in memory: the handshake, echoes of every
// size class of frame length, input split at every byte, control frames and refusals.
#include "ws_echo.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/proto/ws/frame_writer.h"
#include "ws_client.h"

namespace ferry::bench {
namespace {

namespace ws = proto::ws;

constexpr ws::MaskKey kKey = {std::byte{0x12}, std::byte{0x34}, std::byte{0x56}, std::byte{0x78}};
constexpr std::array<std::byte, 16> kNonce{};

std::vector<std::byte> bytes_of(std::string_view text) {
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    return {p, p + text.size()};
}

std::string text_of(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::vector<std::byte> payload(size_t size) {
    std::vector<std::byte> out(size);
    for (size_t i = 0; i < size; ++i) {
        out[i] = static_cast<std::byte>('a' + i % 26);
    }
    return out;
}

// Feeds `input` to the session in pieces of at most `step` bytes; returns everything it
// answered and whether it asked to close.
std::vector<std::byte> feed_session(WsEchoSession& session, std::vector<std::byte> input,
                                    size_t step, bool* closed = nullptr) {
    std::vector<std::byte> out;
    for (size_t at = 0; at < input.size(); at += step) {
        const size_t n = std::min(step, input.size() - at);
        const WsEchoSession::Next next = session.feed({input.data() + at, n});
        const std::span<const std::byte> answer = session.output();
        out.insert(out.end(), answer.begin(), answer.end());
        session.clear_output();
        if (next == WsEchoSession::Next::Close) {
            if (closed != nullptr) {
                *closed = true;
            }
            break;
        }
    }
    return out;
}

// A client and a session after a successful upgrade.
struct Pair {
    explicit Pair(WsClientOptions options, size_t max_payload = 1 << 20)
        : client(options, max_payload) {
        const std::span<const std::byte> request = client.handshake_request(kNonce);
        std::vector<std::byte> answer =
            feed_session(session, {request.begin(), request.end()}, request.size());
        const WsClient::Result r = client.feed_handshake(answer);
        EXPECT_EQ(r.status, WsClient::Status::Open) << client.error();
        EXPECT_EQ(r.consumed, answer.size());
    }
    WsClient client;
    WsEchoSession session;
};

WsClientOptions verifying(bool text = false) {
    WsClientOptions o;
    o.host = "127.0.0.1:1";
    o.path = "/echo";
    o.text = text;
    o.verify = true;
    return o;
}

TEST(WsEcho, EchoesMessagesOfEveryLengthEncoding) {
    Pair pair(verifying());
    for (size_t size : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{65535},
                        size_t{65536}, size_t{70000}}) {
        const std::vector<std::byte> message = payload(size);
        const std::span<const std::byte> frame = pair.client.frame_message(message, kKey);
        std::vector<std::byte> echo =
            feed_session(pair.session, {frame.begin(), frame.end()}, 4096);
        const WsClient::Result r = pair.client.feed_echo(echo);
        EXPECT_EQ(r.status, WsClient::Status::MessageDone) << size << ": " << pair.client.error();
    }
}

TEST(WsEcho, EchoesWhateverWayTheBytesAreSplit) {
    Pair pair(verifying(true));
    const std::vector<std::byte> message = payload(300);
    for (size_t step = 1; step <= 40; ++step) {
        const std::span<const std::byte> frame = pair.client.frame_message(message, kKey);
        std::vector<std::byte> echo =
            feed_session(pair.session, {frame.begin(), frame.end()}, step);
        // The echo is one frame, fed back to the client byte by byte.
        for (size_t i = 0; i < echo.size(); ++i) {
            const WsClient::Result r = pair.client.feed_echo({echo.data() + i, 1});
            ASSERT_NE(r.status, WsClient::Status::Error) << pair.client.error();
            EXPECT_EQ(r.status == WsClient::Status::MessageDone, i + 1 == echo.size());
        }
    }
}

TEST(WsEcho, ReassemblesFragmentedMessagesAndAnswersPing) {
    WsEchoSession session;
    WsClient client(verifying(), 1024);
    const std::span<const std::byte> request = client.handshake_request(kNonce);
    std::vector<std::byte> input(request.begin(), request.end());
    // Right behind the head: "hel" (Text, not final), a Ping, "lo" (Continuation, final).
    const auto append = [&](ws::Opcode op, bool fin, std::string_view data) {
        std::vector<std::byte> body = bytes_of(data);
        std::array<std::byte, ws::kMaxFrameHeaderSize> header{};
        const size_t n = ws::write_frame_header(header, op, fin, body.size(), kKey);
        ws::apply_mask(body, kKey, 0);
        input.insert(input.end(), header.begin(), header.begin() + static_cast<ptrdiff_t>(n));
        input.insert(input.end(), body.begin(), body.end());
    };
    append(ws::Opcode::Text, false, "hel");
    append(ws::Opcode::Ping, true, "p!");
    append(ws::Opcode::Continuation, true, "lo");
    const std::vector<std::byte> out = feed_session(session, input, 7);
    const std::string text = text_of(out);
    const size_t head_end = text.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos);
    EXPECT_TRUE(text.starts_with("HTTP/1.1 101 "));
    // Pong "p!" first (answered as it came), then the whole message as one Text frame.
    EXPECT_EQ(text.substr(head_end + 4), std::string("\x8a\x02p!\x81\x05hello", 11));
}

TEST(WsEcho, EchoesAMessageSentInFragmentsAroundAPing) {
    Pair pair(verifying());
    const std::array<ws::MaskKey, 4> keys = {kKey, kKey, kKey, kKey};
    for (size_t nkeys = 1; nkeys <= keys.size(); ++nkeys) {
        for (size_t size : {size_t{0}, size_t{2}, size_t{1000}}) {
            const std::vector<std::byte> message = payload(size);
            const std::span<const std::byte> frames =
                pair.client.frame_message(message, std::span(keys.data(), nkeys));
            std::vector<std::byte> echo =
                feed_session(pair.session, {frames.begin(), frames.end()}, 5);
            // With fragments the Pong comes first; the client skips it.
            EXPECT_EQ(echo.front() == std::byte{0x8a}, nkeys > 2) << nkeys;
            EXPECT_EQ(pair.client.feed_echo(echo).status, WsClient::Status::MessageDone)
                << nkeys << " keys, " << size << " B: " << pair.client.error();
        }
    }
}

TEST(WsEcho, EchoesTheFirstOfferedSubprotocol) {
    WsClientOptions options = verifying();
    options.subprotocol = "chat";
    Pair pair(options);  // WsClient requires the server to choose it
    const std::vector<std::byte> message = payload(10);
    const std::span<const std::byte> frame = pair.client.frame_message(message, kKey);
    std::vector<std::byte> echo = feed_session(pair.session, {frame.begin(), frame.end()}, 64);
    EXPECT_EQ(pair.client.feed_echo(echo).status, WsClient::Status::MessageDone);
}

TEST(WsEcho, AnswersCloseWithTheSameCode) {
    Pair pair(verifying());
    std::array<std::byte, ws::kMaxControlFrameSize> frame{};
    const size_t n = ws::write_close_frame(frame, ws::CloseCode::GoingAway, "bye", kKey);
    bool closed = false;
    const std::vector<std::byte> out =
        feed_session(pair.session, {frame.begin(), frame.begin() + n}, n, &closed);
    EXPECT_TRUE(closed);
    EXPECT_EQ(text_of(out), std::string("\x88\x02\x03\xe9", 4));  // 1001
}

TEST(WsEcho, FailsAnUnmaskedClientFrameWithProtocolError) {
    Pair pair(verifying());
    bool closed = false;
    const std::vector<std::byte> out =
        feed_session(pair.session, bytes_of("\x82\x01x"), 3, &closed);
    EXPECT_TRUE(closed);
    ASSERT_GE(out.size(), 4U);
    EXPECT_EQ(text_of(out).substr(0, 4), std::string("\x88", 1) +
                                             static_cast<char>(out.size() - 2) +
                                             std::string("\x03\xea", 2));  // 1002
}

TEST(WsEcho, RefusesARequestThatIsNoUpgrade) {
    WsEchoSession session;
    bool closed = false;
    const std::vector<std::byte> out =
        feed_session(session, bytes_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 64, &closed);
    EXPECT_TRUE(closed);
    EXPECT_TRUE(text_of(out).starts_with("HTTP/1.1 400 ")) << text_of(out);
}

TEST(WsClient, ReportsAChangedPayloadAndALengthMismatch) {
    Pair pair(verifying());
    const std::vector<std::byte> message = payload(8);
    (void)pair.client.frame_message(message, kKey);
    std::vector<std::byte> wrong = bytes_of(
        "\x82\x08"
        "abcdefgX");
    EXPECT_EQ(pair.client.feed_echo(wrong).status, WsClient::Status::Error);
    EXPECT_EQ(pair.client.error(), "echoed payload differs from the request");

    WsClientOptions lengths_only = verifying();
    lengths_only.verify = false;
    Pair other(lengths_only);
    (void)other.client.frame_message(message, kKey);
    std::vector<std::byte> shorter = bytes_of(
        "\x82\x07"
        "abcdefg");
    EXPECT_EQ(other.client.feed_echo(shorter).status, WsClient::Status::Error);
    EXPECT_EQ(other.client.error(), "echoed message shorter than the request");
}

TEST(WsClient, RejectsA101WithTheWrongAcceptKey) {
    WsClient client(verifying(), 16);
    (void)client.handshake_request(kNonce);
    const WsClient::Result r = client.feed_handshake(
        bytes_of("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                 "Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"));
    EXPECT_EQ(r.status, WsClient::Status::Error);
    EXPECT_TRUE(client.error().starts_with("bad handshake (status 101)")) << client.error();
}

}  // namespace
}  // namespace ferry::bench
