#include "ferry/tunnel/session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ferry/base/clock.h"
#include "ferry/buf/chunk_queue.h"
#include "ferry/buf/pool.h"
#include "ferry/io/buf_ring.h"
#include "ferry/io/ring.h"
#include "ferry/io/socket.h"
#include "ferry/loop/context.h"
#include "ferry/loop/context_owner.h"
#include "ferry/proto/tunnel/frame_decoder.h"
#include "ferry/proto/tunnel/frame_encoder.h"
#include "ferry/transport/tcp_transport.h"
#include "ferry/tunnel/metrics.h"
#include "ferry/tunnel/stream.h"
#include "session_harness.h"

namespace ferry::tunnel {
namespace {

namespace pt = proto::tunnel;
using harness::kBufferSize;
using harness::tcp_pair;
using harness::TestHandler;
using harness::TestOwner;

class SessionTest : public harness::SessionHarness {};

// Decodes what a Session wrote to a raw peer socket.
struct CaptureSink {
    bool on_hello(const pt::Hello& h) noexcept {
        hello_name = std::string(h.settings.node_name);
        ++hellos;
        return true;
    }
    bool on_open(uint32_t, const pt::Open&) noexcept { return true; }
    bool on_data(uint32_t stream_id, std::span<const std::byte> piece, pt::DataFlags f) noexcept {
        data.push_back({stream_id, piece.size(), f});
        return true;
    }
    bool on_open_ack(uint32_t stream_id, const pt::MetadataView&) noexcept {
        open_acks.push_back(stream_id);
        return true;
    }
    bool on_trailers(uint32_t stream_id, const pt::MetadataView&) noexcept {
        trailers.push_back(stream_id);
        return true;
    }
    bool on_window(uint32_t stream_id, uint32_t increment) noexcept {
        windows.emplace_back(stream_id, increment);
        return true;
    }
    bool on_reset(uint32_t stream_id, pt::ErrorCode code, std::string_view reason) noexcept {
        resets.emplace_back(stream_id, code);
        reset_reasons.emplace_back(reason);
        return true;
    }
    bool on_ping(bool ack, uint64_t opaque) noexcept {
        if (ack) {
            ping_acks.push_back(opaque);
        } else {
            ++pings;
        }
        return true;
    }
    bool on_goaway(uint32_t last, pt::ErrorCode code, std::string_view debug) noexcept {
        goaway = code;
        goaway_debug = std::string(debug);
        goaway_last_ids.push_back(last);
        return true;
    }

    int hellos = 0;
    int pings = 0;
    std::vector<uint64_t> ping_acks;
    std::vector<std::pair<uint32_t, uint32_t>> windows;
    std::vector<std::pair<uint32_t, pt::ErrorCode>> resets;
    std::vector<std::string> reset_reasons;
    struct DataEvent {
        uint32_t stream_id;
        size_t bytes;
        pt::DataFlags flags;
    };
    std::vector<DataEvent> data;
    std::vector<uint32_t> open_acks;
    std::vector<uint32_t> trailers;
    std::vector<uint32_t> goaway_last_ids;
    std::string hello_name;
    std::optional<pt::ErrorCode> goaway;
    std::string goaway_debug;
};

std::vector<std::byte> preface_and_hello(const pt::HelloSettings& settings) {
    std::vector<std::byte> out(pt::kPrefaceSize + pt::hello_frame_size(settings));
    size_t n = pt::encode_preface(out);
    n += pt::encode_hello(std::span<std::byte>(out).subspan(n), settings);
    out.resize(n);
    return out;
}

std::vector<std::byte> open_frame(uint32_t stream_id) {
    std::vector<std::byte> out(pt::open_frame_size(pt::StreamProtocol::Tcp, "k", {}));
    out.resize(pt::encode_open(out, stream_id, pt::StreamProtocol::Tcp, "k", {}));
    return out;
}

std::vector<std::byte> ping_frame(uint64_t opaque) {
    std::vector<std::byte> out(pt::kPingFrameSize);
    out.resize(pt::encode_ping(out, false, opaque));
    return out;
}

std::vector<std::byte> data_frame(uint32_t stream_id, uint32_t len) {
    std::vector<std::byte> out(pt::kFrameHeaderSize + len, std::byte{'d'});
    const size_t n = pt::encode_data_header(out, stream_id, len, false);
    out.resize(n == 0 ? 0 : out.size());
    return out;
}

void write_all(int fd, std::span<const std::byte> bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
        ASSERT_GT(n, 0) << strerror(errno);
        off += static_cast<size_t>(n);
    }
}

// Everything readable on `fd` without blocking (the peer closed, so this ends at EOF).
std::vector<std::byte> read_available(int fd) {
    std::vector<std::byte> out;
    std::byte buf[65536];
    for (int i = 0; i < 10000; ++i) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0) {
            break;
        }
        out.insert(out.end(), buf, buf + n);
    }
    return out;
}

// ---- HELLO ------------------------------------------------------------------------------------

TEST_F(SessionTest, HelloExchangeMakesBothSessionsUsable) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    EXPECT_TRUE(initiator_->usable());
    EXPECT_TRUE(terminator_->usable());
    EXPECT_EQ(initiator_->state(), Session::State::Open);
    EXPECT_EQ(initiator_->peer_name(), "terminator-node");
    EXPECT_EQ(terminator_->peer_name(), "initiator-node");
    // Plain TCP offers no KeyUpdate; both sides speak v1.1.
    EXPECT_EQ(initiator_->peer_capabilities(), pt::kCapabilityMessages);
    EXPECT_TRUE(initiator_->messages());
    EXPECT_TRUE(terminator_->messages());
    EXPECT_STREQ(initiator_->transport_kind(), "plain");
    EXPECT_EQ(init_owner_.draining + term_owner_.draining, 0);
    EXPECT_GE(metrics_.frames_in.value(), 2U);
    EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 0U);
}

TEST_F(SessionTest, NoStreamOpensBeforeThePeerHello) {
    ASSERT_NO_FATAL_FAILURE(build());
    if (IsSkipped()) {
        return;
    }
    auto [a, b] = tcp_pair();
    ASSERT_GE(a, 0);
    initiator_ = make_session(a, Session::Role::Initiator, &init_owner_, "initiator-node");
    terminator_ = make_session(b, Session::Role::Terminator, &term_owner_, "terminator-node");
    initiator_->start();
    terminator_->start();
    TestHandler h;
    EXPECT_EQ(initiator_->open_stream(pt::StreamProtocol::Tcp, "early", {}, &h), nullptr);
    EXPECT_FALSE(initiator_->usable());
    ASSERT_TRUE(run_until([&] { return init_owner_.ready == 1 && term_owner_.ready == 1; }));
}

// ---- streams ----------------------------------------------------------------------------------

TEST_F(SessionTest, AStreamOpenedByTheInitiatorArrivesAtTheTerminatorOwner) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h, "orders-svc", pt::StreamProtocol::WebSocket);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->id(), 1U);
    ASSERT_TRUE(run_until([&] { return term_owner_.opened_keys.size() == 1; }));
    EXPECT_EQ(term_owner_.opened_keys[0], "orders-svc");
    EXPECT_EQ(term_owner_.opened_ids[0], 1U);
    EXPECT_EQ(term_owner_.opened_protocols[0], pt::StreamProtocol::WebSocket);
    EXPECT_EQ(initiator_->stream_count(), 1U);
    EXPECT_EQ(terminator_->stream_count(), 1U);

    TestHandler& h2 = handlers_.emplace_back();
    ASSERT_NE(open(h2, "second"), nullptr);
    EXPECT_EQ(h2.stream->id(), 3U) << "initiator streams are odd and increasing";
    ASSERT_TRUE(run_until([&] { return term_owner_.opened_keys.size() == 2; }));
    EXPECT_EQ(term_owner_.opened_ids[1], 3U);
    EXPECT_EQ(metrics_.streams_opened.value(), 4U);  // both ends count, sharing one Metrics
    EXPECT_EQ(metrics_.streams_active.value(), 4);
}

TEST_F(SessionTest, TheTerminatorOpensEvenNumberedStreams) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    h.stream = terminator_->open_stream(pt::StreamProtocol::Grpc, "push", {}, &h);
    ASSERT_NE(h.stream, nullptr);
    EXPECT_EQ(h.stream->id(), 2U);
    ASSERT_TRUE(run_until([&] { return init_owner_.opened_keys.size() == 1; }));
    EXPECT_EQ(init_owner_.opened_ids[0], 2U);
    EXPECT_EQ(init_owner_.opened_protocols[0], pt::StreamProtocol::Grpc);
}

TEST_F(SessionTest, ARefusedStreamIsResetAtTheOpener) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    term_owner_.refuse = true;
    TestHandler& h = handlers_.emplace_back();
    ASSERT_NE(open(h), nullptr);
    ASSERT_TRUE(run_until([&] { return h.reset.has_value(); }));
    EXPECT_EQ(*h.reset, pt::ErrorCode::RefusedStream);
    EXPECT_EQ(initiator_->stream_count(), 0U);
    EXPECT_EQ(terminator_->stream_count(), 0U);
    EXPECT_EQ(metrics_.streams_refused.value(), 1U);
    EXPECT_TRUE(initiator_->usable());
}

TEST_F(SessionTest, SmallWritesArriveInOrder) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h);
    ASSERT_NE(s, nullptr);
    std::string expected;
    for (int i = 0; i < 50; ++i) {
        std::string piece = "piece-" + std::to_string(i) + ";";
        write_text(s, piece);
        expected += piece;
    }
    ASSERT_TRUE(run_until([&] {
        return !term_owner_.accepted.empty() && term_owner_.handler(0).received == expected.size();
    }));
    EXPECT_EQ(term_owner_.handler(0).text, expected);
}

TEST_F(SessionTest, SeveralMebibytesArriveInOrderInBothDirections) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    constexpr uint64_t kUp = 8 * 1024 * 1024 + 123;
    constexpr uint64_t kDown = 3 * 1024 * 1024 + 7;
    term_owner_.configure = [](TestHandler& th, const pt::Open&) { th.seed = 1; };
    TestHandler& up = handlers_.emplace_back();
    up.seed = 2;  // what the terminator sends back
    Stream* s = open(up);
    ASSERT_NE(s, nullptr);
    uint64_t sent_up = 0;
    uint64_t sent_down = 0;
    between_steps_ = [&] {
        if (up.stream != nullptr) {
            sent_up = pump(up.stream, 1, sent_up, kUp);
            if (sent_up == kUp) {
                up.stream->finish();
            }
        }
        if (!term_owner_.accepted.empty() && term_owner_.handler(0).stream != nullptr) {
            Stream* back = term_owner_.handler(0).stream;
            sent_down = pump(back, 2, sent_down, kDown);
            if (sent_down == kDown) {
                back->finish();
            }
        }
    };
    ASSERT_TRUE(run_until([&] {
        return !term_owner_.accepted.empty() && term_owner_.handler(0).fin && up.fin;
    })) << "up "
        << (term_owner_.accepted.empty() ? 0 : term_owner_.handler(0).received) << " down "
        << up.received;
    const TestHandler& far = term_owner_.handler(0);
    EXPECT_EQ(far.received, kUp);
    EXPECT_EQ(far.first_mismatch, UINT64_MAX) << "first bad byte at " << far.first_mismatch;
    EXPECT_EQ(up.received, kDown);
    EXPECT_EQ(up.first_mismatch, UINT64_MAX) << "first bad byte at " << up.first_mismatch;
    EXPECT_FALSE(far.data_after_fin);
    EXPECT_GE(transport_metrics_.tunnel_bytes_in.value(), kUp + kDown);
    EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 0U);
}

TEST_F(SessionTest, FinTravelsBothWaysAndDetachedStreamsAreFreed) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h);
    ASSERT_NE(s, nullptr);
    write_text(s, "request");
    s->finish();
    ASSERT_TRUE(
        run_until([&] { return !term_owner_.accepted.empty() && term_owner_.handler(0).fin; }));
    TestHandler& far = term_owner_.handler(0);
    EXPECT_EQ(far.text, "request");
    EXPECT_FALSE(h.fin);

    write_text(far.stream, "response");
    far.stream->finish();
    ASSERT_TRUE(run_until([&] { return h.fin; }));
    EXPECT_EQ(h.text, "response");

    // Both sides done: detaching frees the streams without a reset.
    h.stream->detach();
    h.stream = nullptr;
    far.stream->detach();
    far.stream = nullptr;
    settle();
    EXPECT_EQ(initiator_->stream_count(), 0U);
    EXPECT_EQ(terminator_->stream_count(), 0U);
    EXPECT_EQ(metrics_.streams_active.value(), 0);
    EXPECT_EQ(metrics_.resets_sent.value(), 0U);
    EXPECT_FALSE(h.reset.has_value());
    EXPECT_FALSE(far.reset.has_value());
}

TEST_F(SessionTest, AStreamFinishedAtOnceCarriesOnlyAFin) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h);
    ASSERT_NE(s, nullptr);
    s->finish();
    ASSERT_TRUE(
        run_until([&] { return !term_owner_.accepted.empty() && term_owner_.handler(0).fin; }));
    EXPECT_EQ(term_owner_.handler(0).received, 0U);
}

TEST_F(SessionTest, WritesAfterFinishAreDropped) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h);
    ASSERT_NE(s, nullptr);
    write_text(s, "before");
    s->finish();
    write_text(s, "after");
    EXPECT_EQ(s->queued_bytes(), 6U);
    ASSERT_TRUE(
        run_until([&] { return !term_owner_.accepted.empty() && term_owner_.handler(0).fin; }));
    settle();
    EXPECT_EQ(term_owner_.handler(0).text, "before");
}

TEST_F(SessionTest, AResetByTheInitiatorReachesTheTerminatorHandler) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h);
    ASSERT_NE(s, nullptr);
    write_text(s, "some bytes");
    ASSERT_TRUE(run_until(
        [&] { return !term_owner_.accepted.empty() && term_owner_.handler(0).received == 10; }));
    s->reset(pt::ErrorCode::Cancel);
    h.stream = nullptr;
    EXPECT_EQ(initiator_->stream_count(), 0U);
    ASSERT_TRUE(run_until([&] { return term_owner_.handler(0).reset.has_value(); }));
    EXPECT_EQ(*term_owner_.handler(0).reset, pt::ErrorCode::Cancel);
    EXPECT_EQ(term_owner_.handler(0).stream, nullptr);
    EXPECT_EQ(terminator_->stream_count(), 0U);
    EXPECT_EQ(metrics_.resets_sent.value(), 1U);
    EXPECT_EQ(metrics_.resets_received.value(), 1U);
    EXPECT_FALSE(h.reset.has_value()) << "the side that resets is not told about its own reset";
}

TEST_F(SessionTest, AResetByTheTerminatorReachesTheInitiatorHandler) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    ASSERT_NE(open(h), nullptr);
    ASSERT_TRUE(run_until([&] { return !term_owner_.accepted.empty(); }));
    TestHandler& far = term_owner_.handler(0);
    far.stream->reset(pt::ErrorCode::UpstreamReset);
    far.stream = nullptr;
    ASSERT_TRUE(run_until([&] { return h.reset.has_value(); }));
    EXPECT_EQ(*h.reset, pt::ErrorCode::UpstreamReset);
    EXPECT_EQ(initiator_->stream_count(), 0U);
    EXPECT_TRUE(initiator_->usable());
}

// ---- flow control -----------------------------------------------------------------------------

TEST_F(SessionTest, AReceiverThatNeverConsumesStopsTheSenderAtTheStreamWindow) {
    tuning_.stream_window = 64 * 1024;
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    constexpr uint64_t kWindow = 64 * 1024;
    term_owner_.configure = [](TestHandler& th, const pt::Open&) {
        th.seed = 5;
        th.consume = false;
    };
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h);
    ASSERT_NE(s, nullptr);
    const uint64_t sent = pump(s, 5, 0, 3 * kWindow, /*ignore_pause=*/true);
    ASSERT_EQ(sent, 3 * kWindow);
    EXPECT_TRUE(s->should_pause()) << "three windows queued";

    settle();
    ASSERT_FALSE(term_owner_.accepted.empty());
    TestHandler& far = term_owner_.handler(0);
    EXPECT_EQ(far.received, kWindow) << "exactly one window crosses without credit";
    EXPECT_EQ(s->queued_bytes(), 2 * kWindow);
    EXPECT_TRUE(s->should_pause());
    EXPECT_EQ(h.writable, 0) << "the queue never fell to half a window";

    // Credit for what was delivered lets exactly one more window through.
    far.release_held();
    settle();
    EXPECT_EQ(far.received, 2 * kWindow);
    EXPECT_EQ(s->queued_bytes(), kWindow);

    // A consuming receiver lets the rest through, and the sender hears it may write again.
    far.consume = true;
    far.release_held();
    ASSERT_TRUE(run_until([&] { return far.received == 3 * kWindow; }));
    EXPECT_EQ(far.first_mismatch, UINT64_MAX);
    EXPECT_EQ(s->queued_bytes(), 0U);
    EXPECT_FALSE(s->should_pause());
    EXPECT_GE(h.writable, 1);
}

TEST_F(SessionTest, TheConnectionWindowBoundsAllStreamsTogether) {
    tuning_.stream_window = 64 * 1024;
    tuning_.connection_window = 96 * 1024;
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    term_owner_.configure = [](TestHandler& th, const pt::Open&) { th.consume = false; };
    TestHandler& a = handlers_.emplace_back();
    TestHandler& b = handlers_.emplace_back();
    ASSERT_NE(open(a, "a"), nullptr);
    ASSERT_NE(open(b, "b"), nullptr);
    pump(a.stream, 1, 0, 64 * 1024, true);
    pump(b.stream, 2, 0, 64 * 1024, true);
    settle();
    ASSERT_EQ(term_owner_.accepted.size(), 2U);
    EXPECT_EQ(term_owner_.handler(0).received + term_owner_.handler(1).received, 96U * 1024);
}

TEST_F(SessionTest, ABulkStreamDoesNotStarveASmallOne) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    constexpr uint64_t kBulk = 16 * 1024 * 1024;
    term_owner_.configure = [](TestHandler& th, const pt::Open& open) {
        if (open.routing_key == "bulk") {
            th.seed = 9;
        }
    };
    TestHandler& bulk = handlers_.emplace_back();
    ASSERT_NE(open(bulk, "bulk"), nullptr);
    uint64_t sent = 0;
    between_steps_ = [&] { sent = pump(bulk.stream, 9, sent, kBulk); };
    ASSERT_TRUE(run_until([&] {
        return !term_owner_.accepted.empty() && term_owner_.handler(0).received >= 512 * 1024;
    }));
    const TestHandler& far_bulk = term_owner_.handler(0);

    TestHandler& small = handlers_.emplace_back();
    ASSERT_NE(open(small, "small"), nullptr);
    write_text(small.stream, "small and urgent");
    const uint64_t bulk_before = far_bulk.received;
    ASSERT_TRUE(run_until(
        [&] { return term_owner_.accepted.size() == 2 && term_owner_.handler(1).received == 16; }));
    const uint64_t bulk_after = far_bulk.received;
    EXPECT_EQ(term_owner_.handler(1).text, "small and urgent");
    EXPECT_LT(bulk_after, kBulk) << "the small stream waited for the bulk one to finish";
    // At most what was already in flight plus about one batch of bulk data went first.
    EXPECT_LE(bulk_after - bulk_before, 2 * uint64_t{tuning_.stream_window} + tuning_.batch_bytes)
        << "bulk bytes delivered ahead of the small stream's";

    ASSERT_TRUE(run_until([&] { return far_bulk.received == kBulk; }));
    EXPECT_EQ(far_bulk.first_mismatch, UINT64_MAX);
}

TEST_F(SessionTest, AHandlerMayWriteFromOnStreamWritable) {
    tuning_.stream_window = 64 * 1024;
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    constexpr uint64_t kTotal = 1024 * 1024;
    term_owner_.configure = [](TestHandler& th, const pt::Open&) { th.seed = 4; };
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h);
    ASSERT_NE(s, nullptr);
    uint64_t sent = pump(s, 4, 0, kTotal);
    ASSERT_TRUE(s->should_pause());
    h.on_writable = [&] { sent = pump(h.stream, 4, sent, kTotal); };
    ASSERT_TRUE(run_until([&] {
        return !term_owner_.accepted.empty() && term_owner_.handler(0).received == kTotal;
    }));
    EXPECT_EQ(term_owner_.handler(0).first_mismatch, UINT64_MAX);
}

TEST_F(SessionTest, APeerResetReturnsTheStreamsUnconsumedBytesToTheConnectionWindow) {
    tuning_.stream_window = 64 * 1024;
    tuning_.connection_window = 128 * 1024;
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    term_owner_.configure = [](TestHandler& th, const pt::Open& open) {
        th.consume = open.routing_key == "after";
    };
    TestHandler& a = handlers_.emplace_back();
    TestHandler& b = handlers_.emplace_back();
    ASSERT_NE(open(a, "a"), nullptr);
    ASSERT_NE(open(b, "b"), nullptr);
    pump(a.stream, 1, 0, 64 * 1024, true);
    pump(b.stream, 2, 0, 64 * 1024, true);
    settle();
    ASSERT_EQ(term_owner_.accepted.size(), 2U);
    ASSERT_EQ(term_owner_.handler(0).received + term_owner_.handler(1).received, 128U * 1024);

    a.stream->reset(pt::ErrorCode::Cancel);
    a.stream = nullptr;
    b.stream->reset(pt::ErrorCode::Cancel);
    b.stream = nullptr;
    ASSERT_TRUE(run_until([&] {
        return term_owner_.handler(0).reset.has_value() && term_owner_.handler(1).reset.has_value();
    }));

    TestHandler& c = handlers_.emplace_back();
    ASSERT_NE(open(c, "after"), nullptr);
    write_text(c.stream, "does the tunnel still move?");
    EXPECT_TRUE(run_until(
        [&] { return term_owner_.accepted.size() == 3 && term_owner_.handler(2).received == 27; },
        200))
        << "the connection window is still exhausted by the two reset streams";
}

TEST_F(SessionTest, ALocalResetReturnsTheStreamsUnconsumedBytesToTheConnectionWindow) {
    tuning_.stream_window = 64 * 1024;
    tuning_.connection_window = 128 * 1024;
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    term_owner_.configure = [](TestHandler& th, const pt::Open& open) {
        th.consume = open.routing_key == "after";
    };
    TestHandler& a = handlers_.emplace_back();
    TestHandler& b = handlers_.emplace_back();
    ASSERT_NE(open(a, "a"), nullptr);
    ASSERT_NE(open(b, "b"), nullptr);
    pump(a.stream, 1, 0, 64 * 1024, true);
    pump(b.stream, 2, 0, 64 * 1024, true);
    settle();
    ASSERT_EQ(term_owner_.accepted.size(), 2U);
    for (size_t i = 0; i < 2; ++i) {
        TestHandler& far = term_owner_.handler(i);
        far.stream->reset(pt::ErrorCode::UpstreamReset);
        far.stream = nullptr;
    }
    ASSERT_TRUE(run_until([&] { return a.reset.has_value() && b.reset.has_value(); }));

    TestHandler& c = handlers_.emplace_back();
    ASSERT_NE(open(c, "after"), nullptr);
    write_text(c.stream, "does the tunnel still move?");
    EXPECT_TRUE(run_until(
        [&] { return term_owner_.accepted.size() == 3 && term_owner_.handler(2).received == 27; },
        200))
        << "the connection window is still exhausted by the two reset streams";
}

// ---- protocol errors, drain, close ------------------------------------------------------------

TEST_F(SessionTest, GarbageFromThePeerFailsTheSessionWithAProtocolError) {
    ASSERT_NO_FATAL_FAILURE(connect_raw());
    if (IsSkipped()) {
        return;
    }
    const std::string garbage = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    write_all(raw_fd_, std::as_bytes(std::span<const char>(garbage.data(), garbage.size())));
    ASSERT_TRUE(run_until([&] { return term_owner_.closed == 1; }));
    EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 1U);
    EXPECT_EQ(terminator_->state(), Session::State::Closed);
    EXPECT_EQ(term_owner_.ready, 0);

    // The peer got our preface and HELLO, then a GOAWAY naming the error, then EOF.
    const std::vector<std::byte> out = read_available(raw_fd_);
    CaptureSink sink;
    pt::FrameDecoder<CaptureSink> decoder(sink);
    const pt::DecodeResult r = decoder.feed(out);
    EXPECT_EQ(r.status, pt::DecodeStatus::Ok) << (r.detail != nullptr ? r.detail : "");
    EXPECT_EQ(sink.hello_name, "terminator-node");
    ASSERT_TRUE(sink.goaway.has_value());
    EXPECT_EQ(*sink.goaway, pt::ErrorCode::BadPreface);
    EXPECT_NE(sink.goaway_debug.find("plaintext HTTP"), std::string::npos) << sink.goaway_debug;
}

TEST_F(SessionTest, ABadFrameAfterHelloResetsStreamsAndClosesTheSession) {
    ASSERT_NO_FATAL_FAILURE(connect_raw());
    if (IsSkipped()) {
        return;
    }
    pt::HelloSettings hello;
    hello.node_name = "raw-peer";
    std::vector<std::byte> in = preface_and_hello(hello);
    // OPEN stream 1, then a WINDOW with a zero increment (RFC 9113 §6.9: PROTOCOL_ERROR).
    std::vector<std::byte> open_frame(pt::open_frame_size(pt::StreamProtocol::Tcp, "k", {}));
    ASSERT_GT(pt::encode_open(open_frame, 1, pt::StreamProtocol::Tcp, "k", {}), 0U);
    in.insert(in.end(), open_frame.begin(), open_frame.end());
    const std::byte bad_window[pt::kWindowFrameSize] = {
        std::byte{0},
        std::byte{0},
        std::byte{0},
        std::byte{4},  // length
        std::byte{static_cast<uint8_t>(pt::FrameType::Window)},
        std::byte{0},
        std::byte{0},
        std::byte{0},  // flags, reserved
        std::byte{0},
        std::byte{0},
        std::byte{0},
        std::byte{1},  // stream 1
        std::byte{0},
        std::byte{0},
        std::byte{0},
        std::byte{0},  // increment 0
    };
    write_all(raw_fd_, in);
    ASSERT_TRUE(run_until([&] { return term_owner_.accepted.size() == 1; }));
    write_all(raw_fd_, bad_window);
    ASSERT_TRUE(run_until([&] { return term_owner_.closed == 1; }));
    EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 1U);
    ASSERT_TRUE(term_owner_.handler(0).reset.has_value());
    EXPECT_EQ(*term_owner_.handler(0).reset, pt::ErrorCode::ProtocolError);
    CaptureSink sink;
    pt::FrameDecoder<CaptureSink> decoder(sink);
    (void)decoder.feed(read_available(raw_fd_));
    ASSERT_TRUE(sink.goaway.has_value());
    EXPECT_EQ(*sink.goaway, pt::ErrorCode::ProtocolError);
}

TEST_F(SessionTest, DrainWithNoStreamsClosesBothSessions) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    initiator_->drain();
    EXPECT_FALSE(initiator_->usable());
    ASSERT_TRUE(run_until([&] { return init_owner_.closed == 1 && term_owner_.closed == 1; }));
    EXPECT_EQ(term_owner_.draining, 1) << "the peer heard the GOAWAY before the close";
    EXPECT_EQ(init_owner_.draining, 0);
    EXPECT_EQ(initiator_->state(), Session::State::Closed);
    EXPECT_EQ(terminator_->state(), Session::State::Closed);
    EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 0U);
}

TEST_F(SessionTest, DrainWaitsForOpenStreamsToFinish) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    ASSERT_NE(open(h), nullptr);
    ASSERT_TRUE(run_until([&] { return !term_owner_.accepted.empty(); }));
    TestHandler& far = term_owner_.handler(0);

    initiator_->drain();
    ASSERT_TRUE(run_until([&] { return term_owner_.draining == 1; }));
    settle();
    EXPECT_EQ(init_owner_.closed + term_owner_.closed, 0) << "a stream is still open";
    EXPECT_EQ(initiator_->state(), Session::State::Draining);
    TestHandler late;
    EXPECT_EQ(terminator_->open_stream(pt::StreamProtocol::Tcp, "late", {}, &late), nullptr);

    // Streams already open still carry data while draining.
    write_text(h.stream, "last words");
    h.stream->finish();
    ASSERT_TRUE(run_until([&] { return far.fin; }));
    EXPECT_EQ(far.text, "last words");
    far.stream->finish();
    ASSERT_TRUE(run_until([&] { return h.fin; }));
    h.stream->detach();
    h.stream = nullptr;
    far.stream->detach();
    far.stream = nullptr;
    ASSERT_TRUE(run_until([&] { return init_owner_.closed == 1 && term_owner_.closed == 1; }));
}

TEST_F(SessionTest, AbortResetsLocalStreamsAndThePeerSeesTheConnectionGo) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    ASSERT_NE(open(h), nullptr);
    ASSERT_TRUE(run_until([&] { return !term_owner_.accepted.empty(); }));
    initiator_->abort("test abort");
    EXPECT_EQ(initiator_->state(), Session::State::Closed);
    // Shutdown on both sides: the streams did nothing wrong, their clients may retry.
    ASSERT_TRUE(h.reset.has_value());
    EXPECT_EQ(*h.reset, pt::ErrorCode::Shutdown);
    ASSERT_TRUE(run_until([&] { return init_owner_.closed == 1 && term_owner_.closed == 1; }));
    ASSERT_TRUE(term_owner_.handler(0).reset.has_value());
    EXPECT_EQ(*term_owner_.handler(0).reset, pt::ErrorCode::Shutdown);
    EXPECT_EQ(metrics_.streams_active.value(), 0);
}

TEST_F(SessionTest, AnAnsweredPingKeepsTheSessionAlive) {
    tuning_.ping_interval_ns = 1;
    tuning_.ping_timeout_ns = 1'000'000'000;
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    const uint64_t t0 = base::mono_ns();
    const uint64_t frames_before = metrics_.frames_in.value();
    initiator_->tick(t0);
    settle();
    EXPECT_GT(metrics_.frames_in.value(), frames_before + 1) << "PING and its ACK were decoded";
    // Past the timeout: the answered ping must not count as outstanding.
    initiator_->tick(t0 + tuning_.ping_timeout_ns + 1);
    settle();
    EXPECT_TRUE(initiator_->usable());
    EXPECT_EQ(init_owner_.closed, 0);
}

TEST_F(SessionTest, APeerThatMissesThresholdPingIntervalsIsGoneBeforeThePingTimeout) {
    tuning_.ping_interval_ns = 100'000'000;
    tuning_.ping_timeout_ns = 10'000'000'000;
    tuning_.peer_failure_threshold = 3;
    ASSERT_NO_FATAL_FAILURE(connect_raw());
    if (IsSkipped()) {
        return;
    }
    write_all(raw_fd_, preface_and_hello({}));
    ASSERT_TRUE(run_until([&] { return term_owner_.ready == 1; }));
    const uint64_t t0 = base::mono_ns() + tuning_.ping_interval_ns;
    terminator_->tick(t0);  // the PING goes out
    settle();
    terminator_->tick(t0 + 3 * tuning_.ping_interval_ns - 1);
    settle();
    EXPECT_EQ(term_owner_.closed, 0) << "three intervals have not passed yet";
    terminator_->tick(t0 + 3 * tuning_.ping_interval_ns + 1);
    ASSERT_TRUE(run_until([&] { return term_owner_.closed == 1; }));
    CaptureSink sink;
    pt::FrameDecoder<CaptureSink> decoder(sink);
    (void)decoder.feed(read_available(raw_fd_));
    ASSERT_TRUE(sink.goaway.has_value());
    EXPECT_EQ(*sink.goaway, pt::ErrorCode::Timeout);
    EXPECT_NE(terminator_->close_reason().find("peer-failure-threshold"), std::string::npos)
        << terminator_->close_reason();
}

TEST_F(SessionTest, AnUnansweredPingTimesTheSessionOut) {
    tuning_.ping_interval_ns = 1;
    tuning_.ping_timeout_ns = 1'000'000'000;
    tuning_.peer_failure_threshold = 0;  // the ping timeout alone
    ASSERT_NO_FATAL_FAILURE(connect_raw());
    if (IsSkipped()) {
        return;
    }
    write_all(raw_fd_, preface_and_hello({}));
    ASSERT_TRUE(run_until([&] { return term_owner_.ready == 1; }));
    const uint64_t t0 = base::mono_ns();
    terminator_->tick(t0);
    settle();
    terminator_->tick(t0 + tuning_.ping_timeout_ns + 1);
    ASSERT_TRUE(run_until([&] { return term_owner_.closed == 1; }));
    CaptureSink sink;
    pt::FrameDecoder<CaptureSink> decoder(sink);
    (void)decoder.feed(read_available(raw_fd_));
    EXPECT_EQ(sink.pings, 1);
    ASSERT_TRUE(sink.goaway.has_value());
    EXPECT_EQ(*sink.goaway, pt::ErrorCode::Timeout);
    EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 1U) << "a ping timeout is a protocol error";
    EXPECT_NE(terminator_->close_reason().find("Timeout"), std::string::npos)
        << terminator_->close_reason();
}

TEST_F(SessionTest, ControlFramesOwedWhileThePoolsAreDryGoOutOnceBuffersReturn) {
    tuning_.stream_window = 16384;
    tuning_.ping_interval_ns = 1;  // a PING is due at every tick the test makes
    ASSERT_NO_FATAL_FAILURE(connect_raw());
    if (IsSkipped()) {
        return;
    }
    write_all(raw_fd_, preface_and_hello({}));
    ASSERT_TRUE(run_until([&] { return term_owner_.ready == 1; }));
    // Two streams from the peer whose ends hold what they receive (buffers and credit), as a
    // slow local socket would.
    term_owner_.configure = [](TestHandler& h, const pt::Open&) {
        h.consume = false;
        h.keep_chunks = true;
    };
    std::vector<std::byte> opens = open_frame(1);
    std::vector<std::byte> open3 = open_frame(3);
    opens.insert(opens.end(), open3.begin(), open3.end());
    write_all(raw_fd_, opens);
    ASSERT_TRUE(run_until([&] { return term_owner_.accepted.size() == 2; }));
    settle();
    CaptureSink sink;
    pt::FrameDecoder<CaptureSink> decoder(sink);
    uint64_t peer_got = 0;
    auto read_peer = [&] {
        std::vector<std::byte> bytes = read_available(raw_fd_);
        peer_got += bytes.size();
        (void)decoder.feed(bytes);
    };
    read_peer();
    // All the session sent so far sits in its first control buffer (one pool buffer): PING ACKs
    // fill it up to the last one that fits.
    const uint64_t fits = (kBufferSize - peer_got) / pt::kPingFrameSize;
    std::vector<std::byte> pings;
    for (uint64_t opaque = 0; opaque < fits; ++opaque) {
        std::vector<std::byte> ping = ping_frame(opaque);
        pings.insert(pings.end(), ping.begin(), ping.end());
    }
    write_all(raw_fd_, pings);
    ASSERT_TRUE(run_until([&] {
        read_peer();
        return sink.ping_acks.size() == fits;
    }));
    ASSERT_GT(peer_got + pt::kPingFrameSize, kBufferSize);

    // No free buffer from here on (taken again after every step). One more PING, in the same
    // receive as DATA that stream 1 holds on to: its ACK is owed. So are the credit stream 1
    // returns and the RESET of stream 3.
    hoard();
    between_steps_ = [this] { hoard(); };
    std::vector<std::byte> in = ping_frame(fits);
    std::vector<std::byte> data = data_frame(1, 8192);
    in.insert(in.end(), data.begin(), data.end());
    write_all(raw_fd_, in);
    ASSERT_TRUE(run_until([&] { return term_owner_.handler(0).received == 8192; }));
    term_owner_.handler(0).release_held();
    ASSERT_TRUE(terminator_->usable()) << "owing credit must not fail the connection";
    ASSERT_NE(term_owner_.handler(1).stream, nullptr);
    term_owner_.handler(1).stream->reset(pt::ErrorCode::Cancel);
    terminator_->tick(base::mono_ns());  // a PING of our own waits for a later tick
    settle();
    read_peer();
    EXPECT_EQ(sink.ping_acks.size(), fits);
    EXPECT_TRUE(sink.windows.empty());
    EXPECT_TRUE(sink.resets.empty());
    EXPECT_EQ(sink.pings, 0);
    EXPECT_TRUE(terminator_->usable()) << "owing frames must not fail the connection";

    // Buffers come back: what was owed goes out, the credit coalesced per window.
    between_steps_ = nullptr;
    hoard_.clear();
    term_owner_.handler(0).kept.clear();
    ASSERT_TRUE(run_until([&] {
        read_peer();
        return sink.ping_acks.size() > fits && sink.windows.size() >= 2 && !sink.resets.empty();
    }));
    EXPECT_EQ(sink.ping_acks.back(), fits);
    EXPECT_THAT(sink.windows,
                ::testing::UnorderedElementsAre(std::pair<uint32_t, uint32_t>{1, 8192},
                                                std::pair<uint32_t, uint32_t>{0, 8192}));
    EXPECT_EQ(sink.resets.front(), (std::pair<uint32_t, pt::ErrorCode>{3, pt::ErrorCode::Cancel}));
    EXPECT_FALSE(sink.goaway.has_value());
    terminator_->tick(base::mono_ns());
    ASSERT_TRUE(run_until([&] {
        read_peer();
        return sink.pings == 1;
    }));
    EXPECT_TRUE(terminator_->usable());
}

// ---- protocol v1.1: messages, OPEN_ACK, TRAILERS, RESET reasons, GOAWAY
// ---------------------------

// Reads what the session writes to a raw peer as it arrives (the connection stays open).
class RawReader {
  public:
    explicit RawReader(int fd) : fd_(fd), decoder_(sink) {}
    void poll() {
        std::byte buf[65536];
        for (;;) {
            ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
            if (n <= 0) {
                eof = eof || n == 0;
                return;
            }
            const pt::DecodeResult r = decoder_.feed({buf, static_cast<size_t>(n)});
            EXPECT_EQ(r.status, pt::DecodeStatus::Ok) << (r.detail != nullptr ? r.detail : "");
        }
    }
    CaptureSink sink;
    bool eof = false;

  private:
    int fd_;
    pt::FrameDecoder<CaptureSink> decoder_;
};

std::vector<std::byte> open_frame_of(uint32_t id, pt::StreamProtocol protocol) {
    std::vector<std::byte> out(pt::open_frame_size(protocol, "k", {}));
    out.resize(pt::encode_open(out, id, protocol, "k", {}));
    return out;
}

std::vector<std::byte> goaway_frame(uint32_t last) {
    std::vector<std::byte> out(pt::goaway_frame_size("bye"));
    out.resize(pt::encode_goaway(out, last, pt::ErrorCode::NoError, "bye"));
    return out;
}

std::vector<std::byte> ping_ack_frame(uint64_t opaque) {
    std::vector<std::byte> out(pt::kPingFrameSize);
    out.resize(pt::encode_ping(out, true, opaque));
    return out;
}

class SessionV11Test : public SessionTest {
  protected:
    // A terminator session whose peer is a raw socket that has said HELLO (v1.1 unless `v1`).
    void connect_raw_hello(bool v1 = false) {
        ASSERT_NO_FATAL_FAILURE(connect_raw());
        if (IsSkipped()) {
            return;
        }
        pt::HelloSettings hello;
        hello.node_name = "raw-peer";
        hello.capabilities = v1 ? 0 : pt::kCapabilityMessages;
        write_all(raw_fd_, preface_and_hello(hello));
        ASSERT_TRUE(run_until([&] { return term_owner_.ready == 1; }));
        reader_ = std::make_unique<RawReader>(raw_fd_);
        between_steps_ = [this] { reader_->poll(); };
    }
    std::unique_ptr<RawReader> reader_;
};

TEST_F(SessionV11Test, MessagesCrossTheTunnelWholeWithTheirKinds) {
    tuning_.max_frame_size = 16384;  // a 100 KiB message must be split across frames
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h, "room", pt::StreamProtocol::WebSocket);
    ASSERT_NE(s, nullptr);
    const std::string big(100 * 1024, 'x');
    // One message written in three pieces, a text message, an empty one, a close message.
    write_text(s, big.substr(0, 10000));
    write_text(s, big.substr(10000, 50000));
    write_text(s, big.substr(60000), pt::DataFlags::make(false, true));
    write_text(s, "hello", pt::DataFlags::make(false, true, pt::MessageKind::Text));
    write_text(s, "", pt::DataFlags::make(false, true, pt::MessageKind::Binary));
    write_text(s,
               "\x03\xe8"
               "bye",
               pt::DataFlags::make(false, true, pt::MessageKind::Close));
    ASSERT_TRUE(run_until([&] {
        return !term_owner_.accepted.empty() && term_owner_.handler(0).messages.size() == 4;
    }));
    const auto& got = term_owner_.handler(0).messages;
    EXPECT_EQ(got[0].first, pt::MessageKind::Binary);
    EXPECT_EQ(got[0].second, big);
    EXPECT_EQ(got[1], std::make_pair(pt::MessageKind::Text, std::string("hello")));
    EXPECT_EQ(got[2], std::make_pair(pt::MessageKind::Binary, std::string()));
    EXPECT_EQ(got[3], std::make_pair(pt::MessageKind::Close, std::string("\x03\xe8"
                                                                         "bye")));
    EXPECT_GE(term_owner_.handler(0).pieces, 8) << "the big message came in several frames";
}

TEST_F(SessionV11Test, OpenCarriesMetadataAndOpenAckAnswersItWithTheFarSidesOwn) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    const std::string binary("\x00\x01\xfe\xff", 4);
    const pt::MetadataEntry request[] = {{":path", "/chat"}, {"x-token-bin", binary}};
    term_owner_.configure = [](TestHandler& h, const pt::Open&) {
        const pt::MetadataEntry response[] = {{":subprotocol", "chat.v2"}};
        ASSERT_TRUE(h.stream->accept(response));
    };
    TestHandler& h = handlers_.emplace_back();
    ASSERT_NE(open(h, "room", pt::StreamProtocol::WebSocket, request), nullptr);
    ASSERT_TRUE(run_until([&] { return h.accepted == 1; }));
    ASSERT_EQ(term_owner_.opened_metadata.size(), 1U);
    EXPECT_EQ(term_owner_.opened_metadata[0], (std::vector<std::pair<std::string, std::string>>{
                                                  {":path", "/chat"}, {"x-token-bin", binary}}));
    EXPECT_EQ(h.accept_metadata,
              (std::vector<std::pair<std::string, std::string>>{{":subprotocol", "chat.v2"}}));
}

TEST_F(SessionV11Test, TrailersFollowTheDataAndEndTheDirection) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    term_owner_.configure = [](TestHandler& h, const pt::Open&) {
        ASSERT_TRUE(h.stream->accept());
    };
    TestHandler& h = handlers_.emplace_back();
    ASSERT_NE(open(h, "svc", pt::StreamProtocol::Grpc), nullptr);
    ASSERT_TRUE(run_until([&] { return h.accepted == 1; }));
    Stream* back = term_owner_.handler(0).stream;
    const std::string binary("\xff\x00\x80", 3);
    write_text(back, "reply", pt::DataFlags::make(false, true));
    const pt::MetadataEntry trailers[] = {{"grpc-status", "0"}, {"x-trace-bin", binary}};
    ASSERT_TRUE(back->finish_with_trailers(trailers));
    ASSERT_TRUE(run_until([&] { return h.got_trailers; }));
    ASSERT_EQ(h.messages.size(), 1U) << "the data came before the trailers";
    EXPECT_EQ(h.messages[0].second, "reply");
    EXPECT_EQ(h.trailers, (std::vector<std::pair<std::string, std::string>>{
                              {"grpc-status", "0"}, {"x-trace-bin", binary}}));
    EXPECT_TRUE(h.fin);
}

TEST_F(SessionV11Test, AV1PeerCarriesTcpStreamsButNoMessageStreams) {
    ASSERT_NO_FATAL_FAILURE(connect_raw_hello(/*v1=*/true));
    if (IsSkipped()) {
        return;
    }
    EXPECT_FALSE(terminator_->messages());
    TestHandler& ws = handlers_.emplace_back();
    EXPECT_EQ(terminator_->open_stream(pt::StreamProtocol::WebSocket, "k", {}, &ws), nullptr);
    TestHandler& tcp = handlers_.emplace_back();
    EXPECT_NE(terminator_->open_stream(pt::StreamProtocol::Tcp, "k", {}, &tcp), nullptr);
    // An OPEN for a message stream from a v1 peer is refused with a bare 4-byte RESET.
    write_all(raw_fd_, open_frame_of(1, pt::StreamProtocol::Grpc));
    ASSERT_TRUE(run_until([&] { return !reader_->sink.resets.empty(); }));
    EXPECT_EQ(reader_->sink.resets[0],
              std::make_pair(uint32_t{1}, pt::ErrorCode::UnsupportedProtocol));
    EXPECT_TRUE(reader_->sink.reset_reasons[0].empty());
    EXPECT_TRUE(term_owner_.accepted.empty()) << "the owner never saw it";
}

TEST_F(SessionV11Test, ARefusalCarriesItsReasonToAV11Peer) {
    ASSERT_NO_FATAL_FAILURE(connect_raw_hello());
    if (IsSkipped()) {
        return;
    }
    term_owner_.refuse = true;
    term_owner_.refuse_code = pt::ErrorCode::UnsupportedProtocol;
    write_all(raw_fd_, open_frame_of(1, pt::StreamProtocol::WebSocket));
    ASSERT_TRUE(run_until([&] { return !reader_->sink.resets.empty(); }));
    EXPECT_EQ(reader_->sink.resets[0].second, pt::ErrorCode::UnsupportedProtocol);
    EXPECT_EQ(reader_->sink.reset_reasons[0], "refused by the test");
}

TEST_F(SessionV11Test, MessageFlagsOnAByteStreamAreAStreamError) {
    ASSERT_NO_FATAL_FAILURE(connect_raw_hello());
    if (IsSkipped()) {
        return;
    }
    write_all(raw_fd_, open_frame_of(1, pt::StreamProtocol::Tcp));
    std::vector<std::byte> data(pt::kFrameHeaderSize + 2, std::byte{'m'});
    (void)pt::encode_data_header(data, 1, 2,
                                 pt::DataFlags::make(false, true, pt::MessageKind::Text));
    write_all(raw_fd_, data);
    ASSERT_TRUE(run_until([&] { return !reader_->sink.resets.empty(); }));
    EXPECT_EQ(reader_->sink.resets[0].second, pt::ErrorCode::ProtocolError);
    EXPECT_EQ(terminator_->state(), Session::State::Open) << "a stream error, not a connection one";
}

// A WebSocket Close may come between the fragments of a message (RFC 6455 §5.4): a Close message
// may cut into an open one (spec §6.3); any other change of kind mid-message is a stream error.
TEST_F(SessionV11Test, OnlyACloseMayCutIntoAnOpenMessage) {
    ASSERT_NO_FATAL_FAILURE(connect_raw_hello());
    if (IsSkipped()) {
        return;
    }
    auto data = [](uint32_t id, std::string_view payload, pt::DataFlags flags) {
        std::vector<std::byte> f(pt::kFrameHeaderSize + payload.size());
        (void)pt::encode_data_header(f, id, static_cast<uint32_t>(payload.size()), flags);
        std::memcpy(f.data() + pt::kFrameHeaderSize, payload.data(), payload.size());
        return f;
    };
    write_all(raw_fd_, open_frame_of(1, pt::StreamProtocol::WebSocket));
    write_all(raw_fd_, data(1, "frag", pt::DataFlags::make(false, false, pt::MessageKind::Text)));
    write_all(raw_fd_,
              data(1, "\x03\xe8", pt::DataFlags::make(false, true, pt::MessageKind::Close)));
    write_all(raw_fd_, open_frame_of(3, pt::StreamProtocol::WebSocket));
    write_all(raw_fd_, data(3, "frag", pt::DataFlags::make(false, false, pt::MessageKind::Text)));
    write_all(raw_fd_, data(3, "bin", pt::DataFlags::make(false, true, pt::MessageKind::Binary)));
    ASSERT_TRUE(run_until([&] { return !reader_->sink.resets.empty(); }));
    ASSERT_EQ(reader_->sink.resets.size(), 1U);
    EXPECT_EQ(reader_->sink.resets[0].first, 3U) << "only the stream whose kind changed";
    EXPECT_EQ(reader_->sink.resets[0].second, pt::ErrorCode::ProtocolError);
    ASSERT_FALSE(term_owner_.accepted.empty());
    ASSERT_FALSE(term_owner_.handler(0).messages.empty());
    EXPECT_EQ(term_owner_.handler(0).messages.back().first, pt::MessageKind::Close);
}

TEST_F(SessionV11Test, AGoawayRefusesOnlyOurStreamsAboveItsLastId) {
    ASSERT_NO_FATAL_FAILURE(connect_raw_hello());
    if (IsSkipped()) {
        return;
    }
    TestHandler& kept = handlers_.emplace_back();
    TestHandler& refused = handlers_.emplace_back();
    kept.stream = terminator_->open_stream(pt::StreamProtocol::Tcp, "a", {}, &kept);
    refused.stream = terminator_->open_stream(pt::StreamProtocol::Tcp, "b", {}, &refused);
    ASSERT_NE(kept.stream, nullptr);
    ASSERT_NE(refused.stream, nullptr);
    ASSERT_TRUE(run_until([&] { return reader_->sink.hellos == 1; }));
    write_all(raw_fd_, goaway_frame(kept.stream->id()));
    ASSERT_TRUE(run_until([&] { return refused.reset.has_value(); }));
    EXPECT_EQ(*refused.reset, pt::ErrorCode::RefusedStream) << "safe to retry elsewhere";
    EXPECT_FALSE(kept.reset.has_value());
    EXPECT_EQ(term_owner_.draining, 1);
    // A later GOAWAY may lower the last id, never raise it.
    write_all(raw_fd_, goaway_frame(pt::kMaxStreamId));
    ASSERT_TRUE(run_until([&] { return term_owner_.closed == 1; }));
    EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 1U);
    EXPECT_NE(terminator_->close_reason().find("raised its last stream id"), std::string::npos);
}

TEST_F(SessionV11Test, ADrainAnnouncesThenServesOpensInFlightThenNamesTheLastOne) {
    ASSERT_NO_FATAL_FAILURE(connect_raw_hello());
    if (IsSkipped()) {
        return;
    }
    terminator_->drain();
    ASSERT_TRUE(run_until([&] { return reader_->sink.pings >= 1; }));
    ASSERT_EQ(reader_->sink.goaway_last_ids, std::vector<uint32_t>{pt::kMaxStreamId});
    // An OPEN that crossed the announcement is still served.
    write_all(raw_fd_, open_frame_of(1, pt::StreamProtocol::Tcp));
    ASSERT_TRUE(run_until([&] { return term_owner_.accepted.size() == 1; }));
    // The drain's PING is answered: the final GOAWAY names stream 1.
    write_all(raw_fd_, ping_ack_frame(~0ULL));
    ASSERT_TRUE(run_until([&] { return reader_->sink.goaway_last_ids.size() == 2; }));
    EXPECT_EQ(reader_->sink.goaway_last_ids[1], 1U);
    // Later OPENs are refused; the served stream finishes and the connection closes.
    write_all(raw_fd_, open_frame_of(3, pt::StreamProtocol::Tcp));
    ASSERT_TRUE(run_until([&] { return !reader_->sink.resets.empty(); }));
    EXPECT_EQ(reader_->sink.resets[0], std::make_pair(uint32_t{3}, pt::ErrorCode::RefusedStream));
    EXPECT_EQ(term_owner_.closed, 0) << "stream 1 is still open";
    term_owner_.handler(0).stream->reset(pt::ErrorCode::Cancel);
    ASSERT_TRUE(run_until([&] { return term_owner_.closed == 1; }));
}

}  // namespace
}  // namespace ferry::tunnel
