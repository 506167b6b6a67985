#include "ferry/tunnel/session.h"

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
#include "ferry/proto/tunnel/frame_decoder.h"
#include "ferry/proto/tunnel/frame_encoder.h"
#include "ferry/tunnel/context.h"
#include "ferry/tunnel/context_owner.h"
#include "ferry/tunnel/metrics.h"
#include "ferry/tunnel/plain_link.h"
#include "ferry/tunnel/stream.h"

namespace ferry::tunnel {
namespace {

namespace pt = proto::tunnel;

constexpr uint32_t kBufferSize = 16384;

// Byte `i` of the test stream with this seed: every offset differs, so a lost, repeated or
// reordered piece shows up as a mismatch at a known offset.
char pattern_byte(uint32_t seed, uint64_t i) {
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL + seed * 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return static_cast<char>(x >> 17);
}

// The local end of a stream, as a test sees it: records what the peer sent and, unless told to
// hold it, returns the credit at once (like a socket that always takes the bytes).
class TestHandler final : public StreamHandler {
  public:
    void on_stream_data(buf::Chunk&& data) noexcept override {
        const auto* p = reinterpret_cast<const char*>(data.data());
        if (fin) {
            data_after_fin = true;
        }
        if (seed.has_value()) {
            for (uint32_t i = 0; i < data.size(); ++i) {
                if (p[i] != pattern_byte(*seed, received + i) && first_mismatch == UINT64_MAX) {
                    first_mismatch = received + i;
                }
            }
        } else {
            text.append(p, data.size());
        }
        received += data.size();
        if (consume && stream != nullptr) {
            stream->consumed(data.size());
        } else {
            held += data.size();
        }
    }
    void on_stream_fin() noexcept override { fin = true; }
    void on_stream_reset(pt::ErrorCode code) noexcept override {
        reset = code;
        stream = nullptr;
    }
    void on_stream_writable() noexcept override {
        ++writable;
        if (on_writable) {
            on_writable();
        }
    }

    // Returns the credit of everything held so far.
    void release_held() {
        ASSERT_NE(stream, nullptr);
        stream->consumed(static_cast<uint32_t>(held));
        held = 0;
    }

    Stream* stream = nullptr;
    std::optional<uint32_t> seed;  // verify bytes against pattern_byte instead of keeping them
    bool consume = true;
    std::string text;
    uint64_t received = 0;
    uint64_t held = 0;
    uint64_t first_mismatch = UINT64_MAX;
    bool fin = false;
    bool data_after_fin = false;
    std::optional<pt::ErrorCode> reset;
    int writable = 0;
    std::function<void()> on_writable;
};

class TestOwner final : public SessionOwner {
  public:
    void on_session_ready(Session&) noexcept override { ++ready; }
    StreamHandler* on_stream_open(Session&, Stream& stream,
                                  const pt::Open& open) noexcept override {
        opened_keys.emplace_back(open.routing_key);
        opened_ids.push_back(stream.id());
        opened_protocols.push_back(open.protocol);
        if (refuse) {
            return nullptr;
        }
        TestHandler& h = accepted.emplace_back();
        h.stream = &stream;
        if (configure) {
            configure(h, open);
        }
        return &h;
    }
    void on_session_draining(Session&) noexcept override { ++draining; }
    void on_session_closed(Session&) noexcept override { ++closed; }
    void on_session_rotation_due(Session&, const char* why) noexcept override {
        rotations.emplace_back(why);
    }

    // The handler of the `i`-th stream the peer opened.
    TestHandler& handler(size_t i) { return accepted.at(i); }

    int ready = 0;
    int draining = 0;
    int closed = 0;
    bool refuse = false;
    std::vector<std::string> rotations;
    std::vector<std::string> opened_keys;
    std::vector<uint32_t> opened_ids;
    std::vector<pt::StreamProtocol> opened_protocols;
    std::deque<TestHandler> accepted;  // deque: handlers never move
    std::function<void(TestHandler&, const pt::Open&)> configure;
};

// Decodes what a Session wrote to a raw peer socket.
struct CaptureSink {
    bool on_hello(const pt::Hello& h) noexcept {
        hello_name = std::string(h.settings.node_name);
        ++hellos;
        return true;
    }
    bool on_open(uint32_t, const pt::Open&) noexcept { return true; }
    bool on_data(uint32_t, std::span<const std::byte>, bool) noexcept { return true; }
    bool on_window(uint32_t, uint32_t) noexcept { return true; }
    bool on_reset(uint32_t, pt::ErrorCode) noexcept { return true; }
    bool on_ping(bool ack, uint64_t) noexcept {
        pings += ack ? 0 : 1;
        return true;
    }
    bool on_goaway(uint32_t, pt::ErrorCode code, std::string_view debug) noexcept {
        goaway = code;
        goaway_debug = std::string(debug);
        return true;
    }

    int hellos = 0;
    int pings = 0;
    std::string hello_name;
    std::optional<pt::ErrorCode> goaway;
    std::string goaway_debug;
};

// A connected loopback TCP pair (client, server).
std::pair<int, int> tcp_pair() {
    absl::StatusOr<io::SocketAddress> any = io::parse_address("127.0.0.1:0");
    absl::StatusOr<int> lfd = io::listen_tcp(*any, /*reuse_port=*/false, 4);
    if (!lfd.ok()) {
        return {-1, -1};
    }
    absl::StatusOr<io::SocketAddress> addr = io::local_address(*lfd);
    int client = io::new_tcp_socket(AF_INET);
    if (client < 0 || connect(client, addr->get(), addr->length) != 0) {
        close(*lfd);
        return {-1, -1};
    }
    int server = accept4(*lfd, nullptr, nullptr, SOCK_CLOEXEC);
    close(*lfd);
    io::set_nodelay(server);
    return {client, server};
}

std::vector<std::byte> preface_and_hello(const pt::HelloSettings& settings) {
    std::vector<std::byte> out(pt::kPrefaceSize + pt::hello_frame_size(settings));
    size_t n = pt::encode_preface(out);
    n += pt::encode_hello(std::span<std::byte>(out).subspan(n), settings);
    out.resize(n);
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

class SessionTest : public ::testing::Test {
  protected:
    void SetUp() override {
        tuning_.stream_window = 256 * 1024;
        tuning_.connection_window = 16 * 1024 * 1024;
    }

    void TearDown() override {
        shut_down();
        if (raw_fd_ >= 0) {
            close(raw_fd_);
        }
    }

    // Builds a shard's worth of context by hand; tests adjust tuning_ before.
    void build() {
        ContextOptions options;
        options.ring.entries = 256;
        options.buffer_size = kBufferSize;
        options.buffer_count = 2048;
        options.buffer_ring_entries = 512;
        options.tunnel_buffer_count = 1024;
        options.tunnel_buffer_ring_entries = 256;
        absl::StatusOr<std::unique_ptr<ContextOwner>> owner =
            ContextOwner::create(options, metrics_, tuning_);
        if (!owner.ok()) {
            GTEST_SKIP() << owner.status();
        }
        owner_ = *std::move(owner);
        ctx_ = &owner_->context();
    }

    std::unique_ptr<Session> make_session(int fd, Session::Role role, TestOwner* owner,
                                          std::string_view name) {
        return std::make_unique<Session>(*ctx_, owner, std::make_unique<PlainLink>(*ctx_, fd), role,
                                         name);
    }

    // Two sessions over loopback TCP in this one ring, HELLOs exchanged.
    void connect() {
        build();
        if (IsSkipped()) {
            return;
        }
        auto [a, b] = tcp_pair();
        ASSERT_GE(a, 0);
        ASSERT_GE(b, 0);
        initiator_ = make_session(a, Session::Role::Initiator, &init_owner_, "initiator-node");
        terminator_ = make_session(b, Session::Role::Terminator, &term_owner_, "terminator-node");
        initiator_->start();
        terminator_->start();
        ASSERT_TRUE(run_until([&] { return init_owner_.ready == 1 && term_owner_.ready == 1; }));
    }

    // One terminator session whose peer is a raw socket the test writes by hand.
    void connect_raw() {
        build();
        if (IsSkipped()) {
            return;
        }
        auto [a, b] = tcp_pair();
        ASSERT_GE(a, 0);
        ASSERT_GE(b, 0);
        raw_fd_ = a;
        terminator_ = make_session(b, Session::Role::Terminator, &term_owner_, "terminator-node");
        terminator_->start();
    }

    // The shard loop's end-of-iteration work (src/shard/shard.cc), minus services.
    void housekeeping() { end_of_iteration(*ctx_); }

    // One loop iteration: submit, wait (at most `wait_ms`) for a CQE, dispatch, housekeeping.
    unsigned step(int wait_ms = 20) {
        housekeeping();
        __kernel_timespec ts{0, static_cast<long long>(wait_ms) * 1'000'000};
        io_uring_cqe* cqe = nullptr;
        (void)io_uring_submit_and_wait_timeout(ctx_->ring.raw(), &cqe, 1, &ts, nullptr);
        ctx_->now_ns = base::mono_ns();
        unsigned n = ctx_->ring.dispatch();
        housekeeping();
        if (between_steps_) {
            between_steps_();
        }
        return n;
    }

    // Runs the loop until `cond` holds; bounded in iterations and in time.
    template <class Cond>
    bool run_until(Cond cond, int max_steps = 20000) {
        const uint64_t deadline = base::mono_ns() + 20'000'000'000ULL;
        for (int i = 0; i < max_steps && !cond() && base::mono_ns() < deadline; ++i) {
            step();
        }
        return cond();
    }

    // Runs until the loop goes quiet: no completion within 20 ms and nothing left to flush.
    void settle() {
        int quiet = 0;
        for (int i = 0; i < 2000 && quiet < 3; ++i) {
            quiet = step() == 0 && ctx_->dirty_head == nullptr ? quiet + 1 : 0;
        }
    }

    void shut_down() {
        if (ctx_ == nullptr) {
            return;
        }
        between_steps_ = nullptr;
        for (auto* s : {initiator_.get(), terminator_.get()}) {
            if (s != nullptr && s->state() != Session::State::Closed) {
                s->abort("test over");
            }
        }
        run_until([&] {
            return (initiator_ == nullptr || init_owner_.closed > 0) &&
                   (terminator_ == nullptr || term_owner_.closed > 0);
        });
        initiator_.reset();
        terminator_.reset();
    }

    // Queues pattern bytes [sent, total) on `s` in pool-buffer pieces, stopping early when the
    // stream says to pause (unless `ignore_pause`). Returns the new `sent`.
    uint64_t pump(Stream* s, uint32_t seed, uint64_t sent, uint64_t total,
                  bool ignore_pause = false) {
        while (sent < total && (ignore_pause || !s->should_pause())) {
            buf::Chunk c = ctx_->pool.try_alloc();
            if (c.empty()) {
                break;
            }
            const auto n = static_cast<uint32_t>(std::min<uint64_t>(c.size(), total - sent));
            auto* p = reinterpret_cast<char*>(c.data());
            for (uint32_t i = 0; i < n; ++i) {
                p[i] = pattern_byte(seed, sent + i);
            }
            c.set_size(n);
            s->write(std::move(c));
            sent += n;
        }
        return sent;
    }

    void write_text(Stream* s, std::string_view text) {
        buf::Chunk c = ctx_->pool.try_alloc();
        ASSERT_FALSE(c.empty());
        ASSERT_LE(text.size(), c.size());
        std::memcpy(c.data(), text.data(), text.size());
        c.set_size(static_cast<uint32_t>(text.size()));
        s->write(std::move(c));
    }

    Stream* open(TestHandler& h, std::string_view key = "svc",
                 pt::StreamProtocol protocol = pt::StreamProtocol::Tcp) {
        h.stream = initiator_->open_stream(protocol, key, &h);
        return h.stream;
    }

    // Declared in construction order; destroyed in reverse (sessions first, ring last).
    Metrics metrics_;
    Tuning tuning_;
    std::unique_ptr<ContextOwner> owner_;
    Context* ctx_ = nullptr;
    std::deque<TestHandler> handlers_;
    TestOwner init_owner_;
    TestOwner term_owner_;
    std::unique_ptr<Session> initiator_;
    std::unique_ptr<Session> terminator_;
    std::function<void()> between_steps_;
    int raw_fd_ = -1;
};

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
    EXPECT_EQ(initiator_->peer_capabilities(), 0U);
    EXPECT_STREQ(initiator_->link_kind(), "plain");
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
    EXPECT_EQ(initiator_->open_stream(pt::StreamProtocol::Tcp, "early", &h), nullptr);
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
    h.stream = terminator_->open_stream(pt::StreamProtocol::Grpc, "push", &h);
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
    EXPECT_GE(metrics_.tunnel_bytes_in.value(), kUp + kDown);
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
    EXPECT_EQ(terminator_->open_stream(pt::StreamProtocol::Tcp, "late", &late), nullptr);

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
    ASSERT_TRUE(h.reset.has_value());
    EXPECT_EQ(*h.reset, pt::ErrorCode::Cancel);
    ASSERT_TRUE(run_until([&] { return init_owner_.closed == 1 && term_owner_.closed == 1; }));
    ASSERT_TRUE(term_owner_.handler(0).reset.has_value());
    EXPECT_EQ(*term_owner_.handler(0).reset, pt::ErrorCode::Cancel);
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

TEST_F(SessionTest, AnUnansweredPingTimesTheSessionOut) {
    tuning_.ping_interval_ns = 1;
    tuning_.ping_timeout_ns = 1'000'000'000;
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
}

}  // namespace
}  // namespace ferry::tunnel
