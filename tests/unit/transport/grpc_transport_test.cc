#include "ferry/transport/grpc_transport.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ferry/tls/tls_context.h"
#include "ferry/transport/tls_transport.h"
#include "ferry/tunnel/session.h"
#include "memory_transport.h"
#include "session_harness.h"
#include "tls_test_util.h"

namespace ferry::transport {
namespace {

namespace pt = proto::tunnel;
using testing::MemoryTransport;
using tunnel::Stream;
using tunnel::harness::TestHandler;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// What a transport reported to the layer above, and that layer's one write at a time.
struct Upper final : TransportSink {
    void on_transport_read(buf::Chunk&& bytes) noexcept override {
        received.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        ++reads;
        if (pause_on_read != nullptr) {
            pause_on_read->pause_reading();  // as TLS does when it cannot take more
        }
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
    Transport* pause_on_read = nullptr;
};

// One HTTP/2 frame as it is on the wire, its header block decoded.
struct H2Frame {
    uint8_t type = 0;
    uint8_t flags = 0;
    int32_t stream = 0;
    std::string payload;
    std::map<std::string, std::string> headers;  // HEADERS only
};

// Every frame of `wire` (a client's preface skipped), header blocks through one HPACK decoder.
std::vector<H2Frame> h2_frames(std::string_view wire) {
    if (wire.substr(0, kPreface.size()) == kPreface) {
        wire.remove_prefix(kPreface.size());
    }
    nghttp2_hd_inflater* inflater = nullptr;
    EXPECT_EQ(nghttp2_hd_inflate_new(&inflater), 0);
    std::vector<H2Frame> out;
    while (wire.size() >= 9) {
        const auto* p = reinterpret_cast<const uint8_t*>(wire.data());
        const size_t len = (size_t{p[0]} << 16) | (size_t{p[1]} << 8) | p[2];
        if (wire.size() < 9 + len) {
            break;
        }
        H2Frame f;
        f.type = p[3];
        f.flags = p[4];
        f.stream = static_cast<int32_t>(
            ((uint32_t{p[5]} << 24) | (uint32_t{p[6]} << 16) | (uint32_t{p[7]} << 8) | p[8]) &
            0x7FFFFFFF);
        f.payload.assign(wire.substr(9, len));
        if (f.type == NGHTTP2_HEADERS) {
            const auto* in = reinterpret_cast<const uint8_t*>(f.payload.data());
            size_t left = f.payload.size();
            for (;;) {
                nghttp2_nv nv;
                int inflate_flags = 0;
                const ssize_t n =
                    nghttp2_hd_inflate_hd2(inflater, &nv, &inflate_flags, in, left, 1);
                if (n < 0) {
                    ADD_FAILURE() << "bad header block";
                    break;
                }
                in += n;
                left -= static_cast<size_t>(n);
                if ((inflate_flags & NGHTTP2_HD_INFLATE_EMIT) != 0) {
                    f.headers[std::string(reinterpret_cast<char*>(nv.name), nv.namelen)] =
                        std::string(reinterpret_cast<char*>(nv.value), nv.valuelen);
                }
                if ((inflate_flags & NGHTTP2_HD_INFLATE_FINAL) != 0) {
                    nghttp2_hd_inflate_end_headers(inflater);
                    break;
                }
                if ((inflate_flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) {
                    break;
                }
            }
        }
        wire.remove_prefix(9 + len);
        out.push_back(std::move(f));
    }
    nghttp2_hd_inflate_del(inflater);
    return out;
}

// The DATA payload of stream 1, concatenated (the gRPC messages).
std::string data_of(const std::vector<H2Frame>& frames) {
    std::string out;
    for (const H2Frame& f : frames) {
        if (f.type == NGHTTP2_DATA && f.stream == 1) {
            out += f.payload;
        }
    }
    return out;
}

// A frame as a raw peer sends it.
std::string h2_frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
    std::string out;
    out += static_cast<char>(payload.size() >> 16);
    out += static_cast<char>(payload.size() >> 8);
    out += static_cast<char>(payload.size());
    out += static_cast<char>(type);
    out += static_cast<char>(flags);
    out += static_cast<char>(stream >> 24);
    out += static_cast<char>(stream >> 16);
    out += static_cast<char>(stream >> 8);
    out += static_cast<char>(stream);
    out += payload;
    return out;
}

// HPACK literal header field without indexing, new name (RFC 7541 §6.2.2).
std::string literal(std::string_view name, std::string_view value) {
    std::string out(1, '\0');
    out += static_cast<char>(name.size());
    out += name;
    out += static_cast<char>(value.size());
    out += value;
    return out;
}

// A client's opening: preface, empty SETTINGS, the call's HEADERS at `path`.
std::string raw_call(std::string_view path) {
    const std::string block = literal(":method", "POST") + literal(":scheme", "http") +
                              literal(":path", path) + literal(":authority", "ferry") +
                              literal("content-type", "application/grpc") +
                              literal("te", "trailers");
    return std::string(kPreface) + h2_frame(NGHTTP2_SETTINGS, 0, 0, "") +
           h2_frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, block);
}

class GrpcTransportTest : public tunnel::harness::SessionHarness {
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

    // A gRPC client and server over a memory pair whose pieces are at most `piece` bytes.
    void connect_pair(uint32_t piece, GrpcOptions client = {}, GrpcOptions server = {}) {
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
        client_ = std::make_unique<GrpcTransport>(*ctx_, transport_metrics_, std::move(a), client);
        server_ = std::make_unique<GrpcTransport>(*ctx_, transport_metrics_, std::move(b), server);
        client_->start(&client_up_);
        server_->start(&server_up_);
    }

    void open_call(uint32_t piece, GrpcOptions client = {}, GrpcOptions server = {}) {
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
        GrpcOptions server;
        server.is_server = true;
        server_ = std::make_unique<GrpcTransport>(*ctx_, transport_metrics_, std::move(b), server);
        raw_->start(&raw_up_);
        server_->start(&server_up_);
    }

    void raw_send(std::string text) {
        raw_out_.push_back(std::move(text));
        std::string& s = raw_out_.back();
        raw_iov_ = iovec{s.data(), s.size()};
        raw_->write(&raw_iov_, 1, s.size());
    }

    void exchange(const std::string& up, uint32_t up_pieces, const std::string& down,
                  uint32_t down_pieces) {
        client_up_.write(*client_, up, up_pieces);
        server_up_.write(*server_, down, down_pieces);
        ASSERT_TRUE(run_until([&] {
            return server_up_.received.size() == up.size() &&
                   client_up_.received.size() == down.size() && client_up_.written == 1 &&
                   server_up_.written == 1;
        })) << server_up_.received.size()
            << " " << client_up_.received.size();
        EXPECT_TRUE(server_up_.received == up);
        EXPECT_TRUE(client_up_.received == down);
    }

    Upper client_up_;
    Upper server_up_;
    Upper raw_up_;
    std::unique_ptr<GrpcTransport> client_;
    std::unique_ptr<GrpcTransport> server_;
    std::unique_ptr<MemoryTransport> raw_;
    MemoryTransport* client_wire_ = nullptr;  // owned by client_
    MemoryTransport* server_wire_ = nullptr;  // owned by server_
    std::deque<std::string> raw_out_;
    iovec raw_iov_{};
};

std::string pattern(size_t n, uint32_t seed) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>(i * seed + i / 251);
    }
    return s;
}

TEST_F(GrpcTransportTest, OpensOneGrpcCallAtTheTunnelPath) {
    ASSERT_NO_FATAL_FAILURE(open_call(4096));
    if (IsSkipped()) {
        return;
    }
    EXPECT_STREQ(client_->kind(), "grpc");
    EXPECT_TRUE(client_->established());
    EXPECT_TRUE(server_->established());
    EXPECT_EQ(client_->raw_socket(), nullptr) << "kTLS must never go on a framed stream";
    EXPECT_EQ(server_->raw_socket(), nullptr);
    EXPECT_EQ(client_wire_->wire.rfind(kPreface, 0), 0U);
    const std::vector<H2Frame> cf = h2_frames(client_wire_->wire);
    const H2Frame* request = nullptr;
    for (const H2Frame& f : cf) {
        if (f.type == NGHTTP2_HEADERS) {
            request = &f;
        }
    }
    ASSERT_NE(request, nullptr);
    EXPECT_EQ(request->stream, 1);
    EXPECT_EQ(request->headers.at(":method"), "POST");
    EXPECT_EQ(request->headers.at(":path"), "/ferry.tunnel.v1.Tunnel/Carry");
    EXPECT_EQ(request->headers.at("content-type"), "application/grpc");
    EXPECT_EQ(request->headers.at("te"), "trailers");
    EXPECT_EQ(request->flags & NGHTTP2_FLAG_END_STREAM, 0);
    const std::vector<H2Frame> sf = h2_frames(server_wire_->wire);
    bool response = false;
    for (const H2Frame& f : sf) {
        if (f.type == NGHTTP2_HEADERS) {
            response = true;
            EXPECT_EQ(f.headers.at(":status"), "200");
            EXPECT_EQ(f.headers.at("content-type"), "application/grpc");
            EXPECT_EQ(f.headers.count("grpc-status"), 0U);
        }
    }
    EXPECT_TRUE(response);
    EXPECT_EQ(transport_metrics_.grpc_tunnel_streams.value(), 2U);
    EXPECT_EQ(transport_metrics_.grpc_tunnel_failures.value(), 0U);
}

TEST_F(GrpcTransportTest, WritesGoOutAsChunkMessagesZeroCopy) {
    ASSERT_NO_FATAL_FAILURE(open_call(4096));
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(exchange("hello from the initiator", 3, "hi", 1));
    // One message per write: prefix, field 1 tag, varint length, the bytes.
    EXPECT_EQ(data_of(h2_frames(client_wire_->wire)),
              std::string("\0\0\0\0\x1a\x0a\x18hello from the initiator", 31));
    EXPECT_EQ(data_of(h2_frames(server_wire_->wire)), std::string("\0\0\0\0\x04\x0a\x02hi", 9));
    EXPECT_EQ(transport_metrics_.bytes_copied.value(), 0U) << "both directions zero-copy";
}

TEST_F(GrpcTransportTest, LargeWritesAreSplitIntoMessagesAndReassembled) {
    GrpcOptions small;
    small.max_message = 1000;
    ASSERT_NO_FATAL_FAILURE(open_call(4096, small, small));
    if (IsSkipped()) {
        return;
    }
    ASSERT_NO_FATAL_FAILURE(
        exchange(pattern(300 * 1000 + 17, 7), 7, pattern(200 * 1000 + 5, 13), 200));
    // A second round reuses the output slots.
    client_up_ = {};
    server_up_ = {};
    ASSERT_NO_FATAL_FAILURE(exchange(pattern(3 << 20, 3), 256, pattern(70000, 5), 2));
}

TEST_F(GrpcTransportTest, ReadsSplitOnEveryByteBoundary) {
    for (uint32_t piece : {1U, 2U, 3U, 5U, 13U, 127U}) {
        SCOPED_TRACE(piece);
        ASSERT_NO_FATAL_FAILURE(open_call(piece));
        if (IsSkipped()) {
            return;
        }
        const std::string text = pattern(300, 1);
        ASSERT_NO_FATAL_FAILURE(exchange(text, 4, text, 5));
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

TEST_F(GrpcTransportTest, WrongPathIsUnimplementedTrailersOnly) {
    GrpcOptions client;
    client.path = "/other.Service/Method";
    connect_pair(4096, client);
    if (IsSkipped()) {
        return;
    }
    ASSERT_TRUE(run_until([&] { return client_up_.downs == 1 && server_up_.downs == 1; }));
    EXPECT_EQ(client_up_.established, 0);
    EXPECT_EQ(server_up_.established, 0);
    const std::vector<H2Frame> sf = h2_frames(server_wire_->wire);
    const H2Frame* headers = nullptr;
    bool goaway = false;
    for (const H2Frame& f : sf) {
        if (f.type == NGHTTP2_HEADERS) {
            headers = &f;
        }
        goaway = goaway || f.type == NGHTTP2_GOAWAY;
    }
    ASSERT_NE(headers, nullptr);
    EXPECT_NE(headers->flags & NGHTTP2_FLAG_END_STREAM, 0) << "trailers-only";
    EXPECT_EQ(headers->headers.at(":status"), "200");
    EXPECT_EQ(headers->headers.at("grpc-status"), "12");
    EXPECT_TRUE(goaway);
    EXPECT_EQ(transport_metrics_.grpc_tunnel_failures.value(), 2U) << "refused and failed";
    EXPECT_EQ(transport_metrics_.grpc_tunnel_streams.value(), 0U);
}

TEST_F(GrpcTransportTest, NotHttp2IsAnsweredWithGoawayAndClosed) {
    ASSERT_NO_FATAL_FAILURE(raw_client());
    if (IsSkipped()) {
        return;
    }
    raw_send("GET /ferry/tunnel HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(run_until([&] { return raw_up_.downs == 1 && server_up_.downs == 1; }));
    EXPECT_EQ(server_up_.established, 0);
    bool goaway = false;
    for (const H2Frame& f : h2_frames(raw_up_.received)) {
        goaway = goaway || f.type == NGHTTP2_GOAWAY;
    }
    EXPECT_TRUE(goaway) << raw_up_.received.size();
    EXPECT_EQ(transport_metrics_.grpc_tunnel_failures.value(), 1U);
}

TEST_F(GrpcTransportTest, ASecondCallIsRefusedAndTheFirstCarriesOn) {
    ASSERT_NO_FATAL_FAILURE(raw_client());
    if (IsSkipped()) {
        return;
    }
    raw_send(raw_call("/ferry.tunnel.v1.Tunnel/Carry"));
    ASSERT_TRUE(run_until([&] { return server_up_.established == 1; }));
    const std::string second = literal(":method", "POST") + literal(":scheme", "http") +
                               literal(":path", "/ferry.tunnel.v1.Tunnel/Carry") +
                               literal(":authority", "ferry");
    // A Chunk "abc" on the first call, then a second call.
    raw_send(h2_frame(NGHTTP2_DATA, 0, 1,
                      std::string("\0\0\0\0\x05\x0a\x03"
                                  "abc",
                                  10)) +
             h2_frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 3, second));
    ASSERT_TRUE(run_until([&] {
        for (const H2Frame& f : h2_frames(raw_up_.received)) {
            if (f.type == NGHTTP2_RST_STREAM && f.stream == 3) {
                return true;
            }
        }
        return false;
    }));
    EXPECT_EQ(server_up_.received, "abc");
    EXPECT_EQ(server_up_.downs, 0);
}

TEST_F(GrpcTransportTest, ResetStreamEndsTheTransport) {
    ASSERT_NO_FATAL_FAILURE(raw_client());
    if (IsSkipped()) {
        return;
    }
    raw_send(raw_call("/ferry.tunnel.v1.Tunnel/Carry"));
    ASSERT_TRUE(run_until([&] { return server_up_.established == 1; }));
    raw_send(h2_frame(NGHTTP2_RST_STREAM, 0, 1, std::string("\0\0\0\x08", 4)));
    ASSERT_TRUE(run_until([&] { return server_up_.downs == 1; }));
    EXPECT_EQ(server_up_.reason, "the gRPC tunnel stream was reset");
}

TEST_F(GrpcTransportTest, MalformedChunkResetsTheCall) {
    ASSERT_NO_FATAL_FAILURE(raw_client());
    if (IsSkipped()) {
        return;
    }
    raw_send(raw_call("/ferry.tunnel.v1.Tunnel/Carry"));
    ASSERT_TRUE(run_until([&] { return server_up_.established == 1; }));
    raw_send(h2_frame(NGHTTP2_DATA, 0, 1, std::string("\0\0\0\0\x03\x12\x01x", 8)));
    ASSERT_TRUE(run_until([&] { return server_up_.downs == 1; }));
    EXPECT_EQ(server_up_.received, "");
}

TEST_F(GrpcTransportTest, PingIsAnswered) {
    ASSERT_NO_FATAL_FAILURE(raw_client());
    if (IsSkipped()) {
        return;
    }
    raw_send(raw_call("/ferry.tunnel.v1.Tunnel/Carry") + h2_frame(NGHTTP2_PING, 0, 0, "12345678"));
    ASSERT_TRUE(run_until([&] {
        for (const H2Frame& f : h2_frames(raw_up_.received)) {
            if (f.type == NGHTTP2_PING && (f.flags & NGHTTP2_FLAG_ACK) != 0) {
                return f.payload == "12345678";
            }
        }
        return false;
    }));
}

TEST_F(GrpcTransportTest, ShutdownWriteEndsTheCallAndBothEndsFinish) {
    ASSERT_NO_FATAL_FAILURE(open_call(4096));
    if (IsSkipped()) {
        return;
    }
    server_up_.write(*server_, "last answer");
    ASSERT_TRUE(run_until([&] { return server_up_.written == 1; }));
    server_->shutdown_write();
    ASSERT_TRUE(run_until([&] { return server_up_.downs == 1 && client_up_.downs == 1; }));
    EXPECT_EQ(client_up_.received, "last answer") << "data before the trailers arrives";
    const std::vector<H2Frame> sf = h2_frames(server_wire_->wire);
    const H2Frame* trailers = nullptr;
    for (const H2Frame& f : sf) {
        if (f.type == NGHTTP2_HEADERS && f.headers.count("grpc-status") != 0) {
            trailers = &f;
        }
    }
    ASSERT_NE(trailers, nullptr);
    EXPECT_EQ(trailers->headers.at("grpc-status"), "0");
    EXPECT_NE(trailers->flags & NGHTTP2_FLAG_END_STREAM, 0);
    bool client_end = false;
    for (const H2Frame& f : h2_frames(client_wire_->wire)) {
        client_end = client_end || (f.stream == 1 && (f.flags & NGHTTP2_FLAG_END_STREAM) != 0);
    }
    EXPECT_TRUE(client_end) << "the client ended its side in turn";
}

TEST_F(GrpcTransportTest, ClientShutdownWriteSendsEndStream) {
    ASSERT_NO_FATAL_FAILURE(open_call(4096));
    if (IsSkipped()) {
        return;
    }
    client_up_.write(*client_, "last words");
    ASSERT_TRUE(run_until([&] { return client_up_.written == 1; }));
    client_->shutdown_write();
    ASSERT_TRUE(run_until([&] { return server_up_.downs == 1 && client_up_.downs == 1; }));
    EXPECT_EQ(server_up_.received, "last words");
}

TEST_F(GrpcTransportTest, PausedReadingWithholdsTheWindow) {
    GrpcOptions server;
    server.window = 65535 * 2;
    ASSERT_NO_FATAL_FAILURE(open_call(4096, {}, server));
    if (IsSkipped()) {
        return;
    }
    server_->pause_reading();
    client_up_.write(*client_, pattern(400000, 3), 10);
    // The window (and what was on its way) is all that arrives while the server is paused.
    settle();
    EXPECT_EQ(client_up_.written, 0);
    EXPECT_LE(server_up_.received.size(), 65535U * 2);
    server_->resume_reading();
    ASSERT_TRUE(
        run_until([&] { return server_up_.received.size() == 400000 && client_up_.written == 1; }));
    EXPECT_TRUE(server_up_.received == pattern(400000, 3));
}

TEST_F(GrpcTransportTest, WindowOfBytesTakenWhilePausedReturnsOnResume) {
    GrpcOptions server;
    server.window = 65535;
    ASSERT_NO_FATAL_FAILURE(open_call(4096, {}, server));
    if (IsSkipped()) {
        return;
    }
    // Every read pauses the server inside the read; the test resumes it between loop turns. The
    // window of bytes handed up while paused is owed until the resume: were it lost, 400 KB could
    // not cross a 64 KiB window.
    server_up_.pause_on_read = server_.get();
    between_steps_ = [&] { server_->resume_reading(); };
    const std::string text = pattern(400000, 3);
    client_up_.write(*client_, text, 10);
    ASSERT_TRUE(run_until([&] {
        return server_up_.received.size() == text.size() && client_up_.written == 1;
    })) << server_up_.received.size();
    between_steps_ = nullptr;
    EXPECT_TRUE(server_up_.received == text);
    int updates = 0;
    for (const H2Frame& f : h2_frames(server_wire_->wire)) {
        updates += f.type == NGHTTP2_WINDOW_UPDATE && f.stream == 1 ? 1 : 0;
    }
    EXPECT_GE(updates, 400000 / 65535);
}

TEST_F(GrpcTransportTest, AWriteWithNoFreeBufferWaitsForOneThenGoesOut) {
    ASSERT_NO_FATAL_FAILURE(open_call(4096));
    if (IsSkipped()) {
        return;
    }
    settle();  // idle: the staging buffer is back in the pool
    hoard();
    client_up_.write(*client_, "waits for a buffer");
    settle();
    EXPECT_EQ(client_up_.written, 0);
    EXPECT_EQ(client_up_.downs, 0) << "a dry pool is waited out, not a failure";
    hoard_.clear();
    ASSERT_TRUE(run_until(
        [&] { return server_up_.received == "waits for a buffer" && client_up_.written == 1; }));
}

// Mutual TLS 1.3 inside the gRPC call, under two tunnel Sessions.
class TlsOverGrpcTest : public tunnel::harness::SessionHarness {};

TEST_F(TlsOverGrpcTest, CarriesATunnelInsideTheGrpcCall) {
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
    GrpcOptions client;
    GrpcOptions server;
    server.is_server = true;
    auto client_g =
        std::make_unique<GrpcTransport>(*ctx_, transport_metrics_, std::move(a), client);
    auto server_g =
        std::make_unique<GrpcTransport>(*ctx_, transport_metrics_, std::move(b), server);
    ASSERT_NO_FATAL_FAILURE(start_sessions(
        std::make_unique<TlsTransport>(*ctx_, transport_metrics_, std::move(client_g), *client_tls,
                                       TlsOptions{}),
        std::make_unique<TlsTransport>(*ctx_, transport_metrics_, std::move(server_g), *server_tls,
                                       TlsOptions{})));
    EXPECT_STREQ(initiator_->transport_kind(), "tls") << "user-space records inside the call";
    EXPECT_EQ(transport_metrics_.grpc_tunnel_streams.value(), 2U);
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
    // The wire is HTTP/2 carrying ciphertext: TLS inside Chunk messages.
    EXPECT_EQ(wire->wire.rfind(kPreface, 0), 0U);
    const std::string data = data_of(h2_frames(wire->wire));
    ASSERT_GT(data.size(), 8U);
    EXPECT_EQ(data[5], '\x0a');
    const size_t first = (static_cast<uint8_t>(data[6]) & 0x80) != 0 ? 8 : 7;  // varint 1 or 2
    EXPECT_EQ(data[first], '\x16') << "the first Chunk starts the ClientHello";
    EXPECT_EQ(wire->wire.find("FERRY\r\n"), std::string::npos);
}

}  // namespace
}  // namespace ferry::transport
