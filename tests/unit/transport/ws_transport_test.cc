#include "ferry/transport/ws_transport.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/proto/ws/frame_writer.h"
#include "ferry/proto/ws/handshake.h"
#include "ferry/proto/ws/mask.h"
#include "ferry/tls/tls_context.h"
#include "ferry/transport/tls_transport.h"
#include "ferry/tunnel/session.h"
#include "memory_transport.h"
#include "session_harness.h"
#include "tls_test_util.h"

namespace ferry::transport {
namespace {

namespace ws = proto::ws;
namespace pt = proto::tunnel;
using testing::MemoryTransport;
using tunnel::Stream;
using tunnel::harness::TestHandler;

// What a transport reported to the layer above, and that layer's one write at a time.
struct Upper final : TransportSink {
    void on_transport_read(buf::Chunk&& bytes) noexcept override {
        received.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        ++reads;
    }
    void on_transport_written() noexcept override { ++written; }
    void on_transport_down(const char* why, int) noexcept override {
        ++downs;
        reason = why;
    }
    void on_transport_quiescent() noexcept override { ++quiescent; }
    void on_transport_established() noexcept override { ++established; }

    // Writes `text` (kept here until written) in `pieces` iovecs of about equal size.
    void write(Transport& t, std::string text, uint32_t pieces = 1) {
        out = std::move(text);
        iov.clear();
        const size_t step = (out.size() + pieces - 1) / pieces;
        for (size_t at = 0; at < out.size(); at += step) {
            iov.push_back(iovec{out.data() + at, std::min(step, out.size() - at)});
        }
        t.write(iov.data(), static_cast<uint32_t>(iov.size()), out.size());
    }

    std::string received;
    std::string reason;
    std::string out;
    std::vector<iovec> iov;
    int reads = 0;
    int written = 0;
    int downs = 0;
    int quiescent = 0;
    int established = 0;
};

// One frame as it is on the wire.
struct WireFrame {
    uint8_t first = 0;  // FIN, RSV and opcode
    bool masked = false;
    ws::MaskKey key{};
    std::string payload;  // unmasked
    size_t size = 0;      // header and payload
};

// Decodes the frame at the start of `wire`; nullopt when it is not all there.
std::optional<WireFrame> read_frame(std::string_view wire) {
    if (wire.size() < 2) {
        return std::nullopt;
    }
    WireFrame f;
    f.first = static_cast<uint8_t>(wire[0]);
    f.masked = (static_cast<uint8_t>(wire[1]) & 0x80) != 0;
    uint64_t len = static_cast<uint8_t>(wire[1]) & 0x7F;
    size_t at = 2;
    const size_t extra = len == 126 ? 2 : len == 127 ? 8 : 0;
    if (wire.size() < at + extra) {
        return std::nullopt;
    }
    if (extra > 0) {
        len = 0;
        for (size_t i = 0; i < extra; ++i) {
            len = (len << 8) | static_cast<uint8_t>(wire[at + i]);
        }
        at += extra;
    }
    if (f.masked) {
        if (wire.size() < at + 4) {
            return std::nullopt;
        }
        std::memcpy(f.key.data(), wire.data() + at, 4);
        at += 4;
    }
    if (wire.size() < at + len) {
        return std::nullopt;
    }
    f.payload.assign(wire.substr(at, len));
    if (f.masked) {
        ws::apply_mask(std::as_writable_bytes(std::span<char>(f.payload.data(), len)), f.key, 0);
    }
    f.size = at + len;
    return f;
}

// Every frame after the HTTP head at the start of `wire`.
std::vector<WireFrame> frames_after_head(std::string_view wire) {
    std::vector<WireFrame> out;
    const size_t head_end = wire.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
        return out;
    }
    wire.remove_prefix(head_end + 4);
    while (std::optional<WireFrame> f = read_frame(wire)) {
        wire.remove_prefix(f->size);
        out.push_back(std::move(*f));
    }
    return out;
}

// A masked client frame, as a raw peer sends it.
std::string client_frame(ws::Opcode op, std::string_view payload,
                         ws::MaskKey key = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}},
                         bool mask = true) {
    std::array<std::byte, ws::kMaxFrameHeaderSize> header;
    const size_t hlen = ws::write_frame_header(header, op, true, payload.size(),
                                               mask ? std::optional(key) : std::nullopt);
    std::string out(reinterpret_cast<const char*>(header.data()), hlen);
    std::string body(payload);
    if (mask) {
        ws::apply_mask(std::as_writable_bytes(std::span<char>(body.data(), body.size())), key, 0);
    }
    return out + body;
}

constexpr std::string_view kGoodRequest =
    "GET /ferry/tunnel HTTP/1.1\r\nHost: ferry\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: ferry-tunnel\r\n\r\n";

class WsTransportTest : public tunnel::harness::SessionHarness {
  protected:
    void TearDown() override {
        for (Transport* t :
             std::initializer_list<Transport*>{client_.get(), server_.get(), raw_.get()}) {
            if (t != nullptr) {
                t->close();
            }
        }
        if (ctx_ != nullptr) {
            run_until([&] {
                return (client_ == nullptr || client_up_.quiescent > 0) &&
                       (server_ == nullptr || server_up_.quiescent > 0) &&
                       (raw_ == nullptr || raw_up_.quiescent > 0);
            });
        }
        client_.reset();
        server_.reset();
        raw_.reset();
        SessionHarness::TearDown();
    }

    // A WebSocket client and server over a memory pair whose pieces are at most `piece` bytes.
    void connect_pair(uint32_t piece, WsOptions client = {}, WsOptions server = {}) {
        if (ctx_ == nullptr) {
            build();
        }
        if (IsSkipped()) {
            return;
        }
        auto a = std::make_unique<MemoryTransport>(*ctx_, piece);
        auto b = std::make_unique<MemoryTransport>(*ctx_, piece);
        MemoryTransport::join(*a, *b);
        client_wire_ = a.get();
        server_wire_ = b.get();
        client.is_server = false;
        server.is_server = true;
        client_ = std::make_unique<WsTransport>(*ctx_, transport_metrics_, std::move(a), client);
        server_ = std::make_unique<WsTransport>(*ctx_, transport_metrics_, std::move(b), server);
        client_->start(&client_up_);
        server_->start(&server_up_);
    }

    void upgrade(uint32_t piece, WsOptions client = {}, WsOptions server = {}) {
        connect_pair(piece, std::move(client), std::move(server));
        if (IsSkipped()) {
            return;
        }
        ASSERT_TRUE(
            run_until([&] { return client_up_.established == 1 && server_up_.established == 1; }));
    }

    // A server over a memory pair whose other end the test drives by hand (raw_).
    void raw_client(uint32_t piece = 4096) {
        if (ctx_ == nullptr) {
            build();
        }
        if (IsSkipped()) {
            return;
        }
        auto a = std::make_unique<MemoryTransport>(*ctx_, piece);
        auto b = std::make_unique<MemoryTransport>(*ctx_, piece);
        MemoryTransport::join(*a, *b);
        server_wire_ = b.get();
        raw_ = std::move(a);
        WsOptions server;
        server.is_server = true;
        server_ = std::make_unique<WsTransport>(*ctx_, transport_metrics_, std::move(b), server);
        raw_->start(&raw_up_);
        server_->start(&server_up_);
    }

    void raw_send(std::string text) {
        raw_out_.push_back(std::move(text));
        std::string& s = raw_out_.back();
        raw_iov_ = iovec{s.data(), s.size()};
        raw_->write(&raw_iov_, 1, s.size());
    }

    // The raw client upgraded, then `frames` sent; waits for the server's reaction.
    void raw_upgraded_then(const std::string& frames) {
        ASSERT_NO_FATAL_FAILURE(raw_client());
        raw_send(std::string(kGoodRequest) + frames);
        ASSERT_TRUE(run_until([&] { return server_up_.established == 1; }));
    }

    Upper client_up_;
    Upper server_up_;
    Upper raw_up_;
    std::unique_ptr<WsTransport> client_;
    std::unique_ptr<WsTransport> server_;
    std::unique_ptr<MemoryTransport> raw_;
    MemoryTransport* client_wire_ = nullptr;  // owned by client_
    MemoryTransport* server_wire_ = nullptr;  // owned by server_
    std::deque<std::string> raw_out_;
    iovec raw_iov_{};
};

TEST_F(WsTransportTest, UpgradesBothRolesWithTheFerryTunnelSubprotocol) {
    ASSERT_NO_FATAL_FAILURE(upgrade(4096));
    if (IsSkipped()) {
        return;
    }
    EXPECT_STREQ(client_->kind(), "ws");
    EXPECT_TRUE(client_->established());
    EXPECT_TRUE(server_->established());
    EXPECT_EQ(client_->raw_socket(), nullptr) << "kTLS must never go on a framed stream";
    EXPECT_EQ(server_->raw_socket(), nullptr);
    const std::string& req = client_wire_->wire;
    EXPECT_EQ(req.rfind("GET /ferry/tunnel HTTP/1.1\r\n", 0), 0U) << req;
    EXPECT_NE(req.find("Sec-WebSocket-Protocol: ferry-tunnel\r\n"), std::string::npos) << req;
    EXPECT_NE(req.find("Sec-WebSocket-Key: "), std::string::npos);
    const std::string& resp = server_wire_->wire;
    EXPECT_EQ(resp.rfind("HTTP/1.1 101 ", 0), 0U) << resp;
    EXPECT_NE(resp.find("Sec-WebSocket-Protocol: ferry-tunnel\r\n"), std::string::npos) << resp;
    EXPECT_EQ(transport_metrics_.ws_upgrades.value(), 2U);
    EXPECT_EQ(transport_metrics_.ws_upgrade_failures.value(), 0U);
}

TEST_F(WsTransportTest, EachConnectionDrawsAFreshKey) {
    ASSERT_NO_FATAL_FAILURE(upgrade(4096));
    if (IsSkipped()) {
        return;
    }
    MemoryTransport* first = client_wire_;
    const std::string first_request = first->wire;
    client_->close();
    server_->close();
    ASSERT_TRUE(run_until([&] { return client_up_.quiescent == 1 && server_up_.quiescent == 1; }));
    client_up_ = {};
    server_up_ = {};
    connect_pair(4096);
    ASSERT_TRUE(
        run_until([&] { return client_up_.established == 1 && server_up_.established == 1; }));
    auto key_of = [](const std::string& req) {
        const size_t at = req.find("Sec-WebSocket-Key: ");
        return req.substr(at, req.find("\r\n", at) - at);
    };
    EXPECT_NE(key_of(first_request), key_of(client_wire_->wire));
}

TEST_F(WsTransportTest, ClientFramesAreMaskedWithFreshKeys) {
    ASSERT_NO_FATAL_FAILURE(upgrade(4096));
    if (IsSkipped()) {
        return;
    }
    const std::string one(1000, 'a');
    client_up_.write(*client_, one);
    ASSERT_TRUE(run_until([&] { return client_up_.written == 1; }));
    client_up_.write(*client_, one);
    ASSERT_TRUE(run_until([&] { return server_up_.received.size() == 2000; }));
    EXPECT_EQ(server_up_.received, one + one);
    std::vector<WireFrame> frames = frames_after_head(client_wire_->wire);
    ASSERT_EQ(frames.size(), 2U);
    for (const WireFrame& f : frames) {
        EXPECT_EQ(f.first, 0x82) << "FIN, binary";
        EXPECT_TRUE(f.masked) << "RFC 6455 §5.3: every client frame is masked";
        EXPECT_EQ(f.payload, one);
    }
    EXPECT_NE(frames[0].key, frames[1].key) << "a fresh key per frame";
    EXPECT_EQ(transport_metrics_.bytes_copied.value(), 2000U)
        << "the client copies what it masks, and only that";
    EXPECT_EQ(client_wire_->wire.find(std::string(64, 'a')), std::string::npos)
        << "the payload never shows in the clear";
}

TEST_F(WsTransportTest, ServerFramesAreUnmasked) {
    ASSERT_NO_FATAL_FAILURE(upgrade(4096));
    if (IsSkipped()) {
        return;
    }
    server_up_.write(*server_, "hello from the terminator", 3);
    ASSERT_TRUE(run_until([&] { return client_up_.received.size() == 25; }));
    EXPECT_EQ(client_up_.received, "hello from the terminator");
    EXPECT_EQ(server_up_.written, 1);
    std::vector<WireFrame> frames = frames_after_head(server_wire_->wire);
    ASSERT_EQ(frames.size(), 1U) << "one frame over the writer's three iovecs";
    EXPECT_EQ(frames[0].first, 0x82);
    EXPECT_FALSE(frames[0].masked);
    EXPECT_NE(server_wire_->wire.find("\x82\x19hello from the terminator"), std::string::npos);
    EXPECT_EQ(transport_metrics_.bytes_copied.value(), 0U) << "server frames leave zero-copy";
}

TEST_F(WsTransportTest, LargeWritesAreSplitIntoFramesAndReassembled) {
    WsOptions small;
    small.max_frame_payload = 1000;
    ASSERT_NO_FATAL_FAILURE(upgrade(4096, small, small));
    if (IsSkipped()) {
        return;
    }
    std::string up(300 * 1000 + 17, '\0');
    std::string down(200 * 1000 + 5, '\0');
    for (size_t i = 0; i < up.size(); ++i) {
        up[i] = static_cast<char>(i * 7 + i / 251);
    }
    for (size_t i = 0; i < down.size(); ++i) {
        down[i] = static_cast<char>(i * 13 + i / 241);
    }
    client_up_.write(*client_, up, 7);
    server_up_.write(*server_, down, 200);
    ASSERT_TRUE(run_until([&] {
        return server_up_.received.size() == up.size() &&
               client_up_.received.size() == down.size() && client_up_.written == 1 &&
               server_up_.written == 1;
    })) << server_up_.received.size()
        << " " << client_up_.received.size();
    EXPECT_TRUE(server_up_.received == up);
    EXPECT_TRUE(client_up_.received == down);
    const std::vector<WireFrame> cf = frames_after_head(client_wire_->wire);
    const std::vector<WireFrame> sf = frames_after_head(server_wire_->wire);
    EXPECT_EQ(cf.size(), 301U);
    EXPECT_EQ(sf.size(), 201U);
    for (const auto* frames : {&cf, &sf}) {
        for (const WireFrame& f : *frames) {
            ASSERT_LE(f.payload.size(), 1000U);
            ASSERT_EQ(f.first, 0x82);
        }
    }
}

TEST_F(WsTransportTest, ReadsSplitOnEveryByteBoundary) {
    // Pieces of 1 byte: the handshake heads and every frame header arrive a byte at a time.
    for (uint32_t piece : {1U, 2U, 3U, 5U, 13U, 127U}) {
        SCOPED_TRACE(piece);
        ASSERT_NO_FATAL_FAILURE(upgrade(piece));
        if (IsSkipped()) {
            return;
        }
        std::string text(300, '\0');
        for (size_t i = 0; i < text.size(); ++i) {
            text[i] = static_cast<char>(i);
        }
        client_up_.write(*client_, text, 4);
        server_up_.write(*server_, text, 5);
        ASSERT_TRUE(run_until([&] {
            return server_up_.received.size() == text.size() &&
                   client_up_.received.size() == text.size();
        }));
        EXPECT_EQ(server_up_.received, text);
        EXPECT_EQ(client_up_.received, text);
        client_->close();
        server_->close();
        ASSERT_TRUE(
            run_until([&] { return client_up_.quiescent == 1 && server_up_.quiescent == 1; }));
        client_.reset();
        server_.reset();
        client_up_ = {};
        server_up_ = {};
    }
}

TEST_F(WsTransportTest, WrongPathIs404) {
    ASSERT_NO_FATAL_FAILURE(raw_client());
    if (IsSkipped()) {
        return;
    }
    std::string req(kGoodRequest);
    req.replace(req.find("/ferry/tunnel"), 13, "/elsewhere");
    raw_send(req);
    ASSERT_TRUE(run_until([&] { return raw_up_.downs == 1 && server_up_.downs == 1; }));
    EXPECT_EQ(raw_up_.received.rfind("HTTP/1.1 404 ", 0), 0U) << raw_up_.received;
    EXPECT_EQ(server_up_.established, 0);
    EXPECT_EQ(transport_metrics_.ws_upgrade_failures.value(), 1U);
    EXPECT_EQ(transport_metrics_.ws_upgrades.value(), 0U);
}

TEST_F(WsTransportTest, ClientAtTheWrongPathFails) {
    WsOptions client;
    client.path = "/not/the/tunnel";
    ASSERT_NO_FATAL_FAILURE(connect_pair(4096, client));
    if (IsSkipped()) {
        return;
    }
    ASSERT_TRUE(run_until([&] { return client_up_.downs == 1 && server_up_.downs == 1; }));
    EXPECT_EQ(client_up_.established, 0);
    EXPECT_EQ(server_up_.established, 0);
    EXPECT_EQ(server_wire_->wire.rfind("HTTP/1.1 404 ", 0), 0U);
    EXPECT_EQ(transport_metrics_.ws_upgrade_failures.value(), 2U) << "counted at both ends";
}

TEST_F(WsTransportTest, BadUpgradeIs400) {
    const std::string bad[] = {
        // Not an upgrade at all.
        "GET /ferry/tunnel HTTP/1.1\r\nHost: ferry\r\n\r\n",
        // No ferry-tunnel subprotocol.
        "GET /ferry/tunnel HTTP/1.1\r\nHost: ferry\r\nUpgrade: websocket\r\nConnection: "
        "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
        "13\r\n\r\n",
        // A malformed head.
        "GET /ferry/tunnel HTTP/1.1\nHost: ferry\r\n\r\n",
    };
    for (const std::string& req : bad) {
        SCOPED_TRACE(req);
        ASSERT_NO_FATAL_FAILURE(raw_client());
        if (IsSkipped()) {
            return;
        }
        raw_send(req);
        ASSERT_TRUE(run_until([&] { return raw_up_.downs == 1 && server_up_.quiescent == 1; }));
        EXPECT_EQ(raw_up_.received.rfind("HTTP/1.1 400 ", 0), 0U) << raw_up_.received;
        EXPECT_EQ(server_up_.established, 0);
        raw_->close();
        ASSERT_TRUE(run_until([&] { return raw_up_.quiescent == 1; }));
        raw_.reset();
        server_.reset();
        raw_up_ = {};
        server_up_ = {};
    }
    EXPECT_EQ(transport_metrics_.ws_upgrade_failures.value(), 3U);
}

TEST_F(WsTransportTest, PingIsAnsweredWithPong) {
    ASSERT_NO_FATAL_FAILURE(raw_upgraded_then(client_frame(ws::Opcode::Ping, "are you there")));
    if (IsSkipped()) {
        return;
    }
    ASSERT_TRUE(run_until([&] { return frames_after_head(raw_up_.received).size() == 1; }));
    const WireFrame pong = frames_after_head(raw_up_.received)[0];
    EXPECT_EQ(pong.first, 0x8A);
    EXPECT_FALSE(pong.masked);
    EXPECT_EQ(pong.payload, "are you there");
    EXPECT_EQ(server_up_.downs, 0);
    EXPECT_TRUE(server_up_.received.empty()) << "control frames are not stream bytes";
}

TEST_F(WsTransportTest, CloseIsAnsweredWithItsCode) {
    std::array<std::byte, ws::kMaxControlPayload> body;
    const size_t n = ws::write_close_payload(body, ws::CloseCode::GoingAway, "bye");
    ASSERT_NO_FATAL_FAILURE(raw_upgraded_then(client_frame(
        ws::Opcode::Close, std::string_view(reinterpret_cast<const char*>(body.data()), n))));
    if (IsSkipped()) {
        return;
    }
    ASSERT_TRUE(run_until([&] { return server_up_.downs == 1 && raw_up_.downs == 1; }));
    const std::vector<WireFrame> frames = frames_after_head(raw_up_.received);
    ASSERT_EQ(frames.size(), 1U);
    EXPECT_EQ(frames[0].first, 0x88);
    ASSERT_GE(frames[0].payload.size(), 2U);
    EXPECT_EQ(frames[0].payload.substr(0, 2), std::string("\x03\xE9", 2)) << "1001 echoed";
}

TEST_F(WsTransportTest, ProtocolErrorClosesWith1002) {
    // A client frame without a mask breaks RFC 6455 §5.1.
    ASSERT_NO_FATAL_FAILURE(
        raw_upgraded_then(client_frame(ws::Opcode::Binary, "bare", {}, /*mask=*/false)));
    if (IsSkipped()) {
        return;
    }
    ASSERT_TRUE(run_until([&] { return server_up_.downs == 1 && raw_up_.downs == 1; }));
    const std::vector<WireFrame> frames = frames_after_head(raw_up_.received);
    ASSERT_EQ(frames.size(), 1U);
    EXPECT_EQ(frames[0].first, 0x88);
    EXPECT_EQ(frames[0].payload.substr(0, 2), std::string("\x03\xEA", 2)) << "1002";
    EXPECT_TRUE(server_up_.received.empty());
}

TEST_F(WsTransportTest, TextFrameClosesWith1003) {
    ASSERT_NO_FATAL_FAILURE(raw_upgraded_then(client_frame(ws::Opcode::Text, "hi")));
    if (IsSkipped()) {
        return;
    }
    ASSERT_TRUE(run_until([&] { return server_up_.downs == 1 && raw_up_.downs == 1; }));
    const std::vector<WireFrame> frames = frames_after_head(raw_up_.received);
    ASSERT_EQ(frames.size(), 1U);
    EXPECT_EQ(frames[0].first, 0x88);
    EXPECT_EQ(frames[0].payload.substr(0, 2), std::string("\x03\xEB", 2)) << "1003";
    EXPECT_TRUE(server_up_.received.empty()) << "text never reaches the layer above";
}

TEST_F(WsTransportTest, ShutdownWriteSendsCloseAndBothEndsFinish) {
    ASSERT_NO_FATAL_FAILURE(upgrade(4096));
    if (IsSkipped()) {
        return;
    }
    client_up_.write(*client_, "last words");
    ASSERT_TRUE(run_until([&] { return client_up_.written == 1; }));
    client_->shutdown_write();
    ASSERT_TRUE(run_until([&] { return server_up_.downs == 1 && client_up_.downs == 1; }));
    EXPECT_EQ(server_up_.received, "last words") << "data before the Close arrives";
    const std::vector<WireFrame> cf = frames_after_head(client_wire_->wire);
    ASSERT_EQ(cf.size(), 2U);
    EXPECT_EQ(cf[1].first, 0x88);
    EXPECT_EQ(cf[1].payload.substr(0, 2), std::string("\x03\xE8", 2)) << "1000";
    const std::vector<WireFrame> sf = frames_after_head(server_wire_->wire);
    ASSERT_EQ(sf.size(), 1U);
    EXPECT_EQ(sf[0].first, 0x88) << "the server answered the Close";
}

// Mutual TLS 1.3 inside the WebSocket, under two tunnel Sessions: the TLS client waits for the
// upgrade before its ClientHello.
class TlsOverWsTest : public tunnel::harness::SessionHarness {};

TEST_F(TlsOverWsTest, CarriesATunnelInsideTheWebSocket) {
    build();
    if (IsSkipped()) {
        return;
    }
    auto client_tls = tls::testing::make_context(tls::testing::client_config());
    auto server_tls = tls::testing::make_context(tls::testing::server_config());
    ASSERT_NE(client_tls, nullptr);
    ASSERT_NE(server_tls, nullptr);
    auto a = std::make_unique<MemoryTransport>(*ctx_, 1500);
    auto b = std::make_unique<MemoryTransport>(*ctx_, 1500);
    MemoryTransport::join(*a, *b);
    MemoryTransport* wire = a.get();
    WsOptions client;
    WsOptions server;
    server.is_server = true;
    auto client_ws = std::make_unique<WsTransport>(*ctx_, transport_metrics_, std::move(a), client);
    auto server_ws = std::make_unique<WsTransport>(*ctx_, transport_metrics_, std::move(b), server);
    ASSERT_NO_FATAL_FAILURE(start_sessions(
        std::make_unique<TlsTransport>(*ctx_, transport_metrics_, std::move(client_ws), *client_tls,
                                       TlsOptions{}),
        std::make_unique<TlsTransport>(*ctx_, transport_metrics_, std::move(server_ws), *server_tls,
                                       TlsOptions{})));
    EXPECT_STREQ(initiator_->transport_kind(), "tls") << "user-space records inside the frames";
    EXPECT_EQ(transport_metrics_.ws_upgrades.value(), 2U);
    EXPECT_EQ(transport_metrics_.tls_handshakes.value(), 2U);
    constexpr uint64_t kUp = 1 << 20;
    constexpr uint64_t kDown = 512 * 1024;
    term_owner_.configure = [](TestHandler& h, const pt::Open&) { h.seed = 1; };
    TestHandler& h = handlers_.emplace_back();
    h.seed = 2;
    Stream* s = open(h);
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(run_until([&] { return !term_owner_.accepted.empty(); }));
    TestHandler& server_h = term_owner_.handler(0);
    uint64_t up = 0;
    uint64_t down = 0;
    between_steps_ = [&] {
        if (up < kUp) {
            up = pump(s, 1, up, kUp);
            if (up == kUp) {
                s->finish();
            }
        }
        if (down < kDown && server_h.stream != nullptr) {
            down = pump(server_h.stream, 2, down, kDown);
            if (down == kDown) {
                server_h.stream->finish();
            }
        }
    };
    ASSERT_TRUE(run_until([&] { return server_h.fin && h.fin; }));
    between_steps_ = nullptr;
    EXPECT_EQ(server_h.received, kUp);
    EXPECT_EQ(h.received, kDown);
    EXPECT_EQ(server_h.first_mismatch, UINT64_MAX);
    EXPECT_EQ(h.first_mismatch, UINT64_MAX);
    EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 0U);
    // The wire is a WebSocket carrying ciphertext: the upgrade, then TLS inside binary frames.
    EXPECT_EQ(wire->wire.rfind("GET /ferry/tunnel HTTP/1.1\r\n", 0), 0U);
    const std::vector<WireFrame> frames = frames_after_head(wire->wire);
    ASSERT_FALSE(frames.empty());
    EXPECT_EQ(frames[0].payload[0], '\x16') << "the first frame starts the ClientHello";
    EXPECT_EQ(wire->wire.find("FERRY\r\n"), std::string::npos);
}

}  // namespace
}  // namespace ferry::transport
