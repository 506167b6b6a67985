#include "ferry/transport/tls_transport.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/base/clock.h"
#include "ferry/buf/pool.h"
#include "ferry/tls/record_layer.h"
#include "ferry/tls/tls_context.h"
#include "ferry/transport/tcp_transport.h"
#include "ferry/tunnel/session.h"
#include "ferry/tunnel/stream.h"
#include "session_harness.h"
#include "tls_test_util.h"

namespace ferry::transport {
namespace {

namespace pt = proto::tunnel;
using tunnel::Session;
using tunnel::Stream;
using tunnel::harness::tcp_pair;
using tunnel::harness::TestHandler;

// Moves bytes between two sockets the test holds, so it decides where the terminator's receives
// end: bytes toward the terminator pass only up to `limit`.
class Relay {
  public:
    Relay(int initiator_side, int terminator_side)
        : initiator_side_(initiator_side), terminator_side_(terminator_side) {
        (void)fcntl(initiator_side_, F_SETFL, O_NONBLOCK);
        (void)fcntl(terminator_side_, F_SETFL, O_NONBLOCK);
    }
    ~Relay() {
        close(initiator_side_);
        close(terminator_side_);
    }
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    void shuttle() {
        read_into(initiator_side_, to_terminator_);
        while (forwarded_ < limit && forwarded_ < to_terminator_.size()) {
            const size_t n = std::min<uint64_t>(limit, to_terminator_.size()) - forwarded_;
            ssize_t w = send(terminator_side_, to_terminator_.data() + forwarded_, n, MSG_NOSIGNAL);
            if (w <= 0) {
                break;
            }
            forwarded_ += static_cast<size_t>(w);
        }
        std::vector<std::byte> back;
        read_into(terminator_side_, back);
        size_t off = 0;
        while (off < back.size()) {
            ssize_t w = send(initiator_side_, back.data() + off, back.size() - off, MSG_NOSIGNAL);
            if (w <= 0) {
                break;  // the initiator end is gone; the test is over
            }
            off += static_cast<size_t>(w);
        }
    }

    // Bytes from the initiator not yet passed on, starting at the next one to pass.
    [[nodiscard]] std::span<const std::byte> held() const {
        return std::span<const std::byte>(to_terminator_).subspan(forwarded_);
    }
    [[nodiscard]] uint64_t forwarded() const { return forwarded_; }

    uint64_t limit = UINT64_MAX;

  private:
    static void read_into(int fd, std::vector<std::byte>& out) {
        std::byte buf[65536];
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n <= 0) {
                return;
            }
            out.insert(out.end(), buf, buf + n);
        }
    }

    int initiator_side_;
    int terminator_side_;
    std::vector<std::byte> to_terminator_;
    size_t forwarded_ = 0;
};

// Two Sessions over TlsTransport (over TCP) (user-space records: kTLS off) in the test's one ring.
class TlsTransportTest : public tunnel::harness::SessionHarness {
  protected:
    void SetUp() override {
        SessionHarness::SetUp();
        client_tls_ = tls::testing::make_context(tls::testing::client_config());
        server_tls_ = tls::testing::make_context(tls::testing::server_config());
        ASSERT_NE(client_tls_, nullptr);
        ASSERT_NE(server_tls_, nullptr);
    }

    void TearDown() override {
        SessionHarness::TearDown();
        relay_.reset();
    }

    std::unique_ptr<Transport> make_transport(int fd, Session::Role role) override {
        const tls::TlsContext& tls = role == Session::Role::Initiator ? *client_tls_ : *server_tls_;
        return std::make_unique<TlsTransport>(
            *ctx_, transport_metrics_,
            std::make_unique<TcpTransport>(*ctx_, transport_metrics_, fd), tls, options_);
    }

    // Sessions whose bytes toward the terminator pass through relay_.
    void connect_through_relay() {
        build();
        if (IsSkipped()) {
            return;
        }
        auto [initiator_fd, relay_a] = tcp_pair();
        auto [relay_b, terminator_fd] = tcp_pair();
        ASSERT_GE(initiator_fd, 0);
        ASSERT_GE(terminator_fd, 0);
        relay_ = std::make_unique<Relay>(relay_a, relay_b);
        between_steps_ = [this] { relay_->shuttle(); };
        step_wait_ms_ = 1;
        ASSERT_NO_FATAL_FAILURE(start_sessions(initiator_fd, terminator_fd));
    }

    // Opens a stream whose far end checks every byte against seed 1.
    Stream* open_checked(TestHandler& h) {
        term_owner_.configure = [](TestHandler& th, const pt::Open&) { th.seed = 1; };
        Stream* s = open(h);
        if (s != nullptr && !run_until([&] { return !term_owner_.accepted.empty(); })) {
            return nullptr;
        }
        return s;
    }

    // Pumps the rest of `total` and finishes, then checks the far end got every byte in order.
    void finish_and_verify(Stream* s, uint64_t sent, uint64_t total) {
        std::function<void()> before = between_steps_;
        between_steps_ = [&, before] {
            if (before) {
                before();
            }
            if (sent < total) {
                sent = pump(s, 1, sent, total);
                if (sent == total) {
                    s->finish();
                }
            }
        };
        const TestHandler& far = term_owner_.handler(0);
        const bool finished = run_until([&] { return far.fin; });
        between_steps_ = before;
        ASSERT_TRUE(finished) << "received " << far.received;
        EXPECT_EQ(far.received, total);
        EXPECT_EQ(far.first_mismatch, UINT64_MAX) << "first bad byte at " << far.first_mismatch;
        EXPECT_EQ(init_owner_.closed, 0);
        EXPECT_EQ(term_owner_.closed, 0);
        EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 0U);
    }

    // While the pools stay dry the wait holds: counted once, nothing delivered, `waiting` still
    // open. Then the buffers come back and every byte arrives.
    void stay_dry_then_verify(const Session& waiting, Stream* s, uint64_t sent, uint64_t total) {
        for (int i = 0; i < 20; ++i) {
            step(1);
        }
        EXPECT_EQ(transport_metrics_.tls_buffer_waits.value(), 1U) << "one wait, counted once";
        EXPECT_EQ(term_owner_.handler(0).received, 0U);
        EXPECT_EQ(waiting.state(), Session::State::Open);
        hoard_.clear();
        finish_and_verify(s, sent, total);
    }

    TlsOptions options_{KtlsMode::Off, 0, 0};  // user-space records; tests may set rekeying
    std::unique_ptr<tls::TlsContext> client_tls_;
    std::unique_ptr<tls::TlsContext> server_tls_;
    std::unique_ptr<Relay> relay_;
};

TEST_F(TlsTransportTest, ASessionCarriesMebibytesInUserSpaceRecords) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open_checked(h);
    ASSERT_NE(s, nullptr);
    finish_and_verify(s, 0, 4 * 1024 * 1024 + 17);
    EXPECT_EQ(transport_metrics_.tls_buffer_waits.value(), 0U);
}

TEST_F(TlsTransportTest, SealingWaitsForBuffersThenSendsEveryByte) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open_checked(h);
    ASSERT_NE(s, nullptr);
    constexpr uint64_t kTotal = 1024 * 1024;
    // Queue a window of plaintext, then leave no buffer for its records before the flush.
    const uint64_t sent = pump(s, 1, 0, kTotal);
    ASSERT_GT(sent, 0U);
    hoard();
    stay_dry_then_verify(*initiator_, s, sent, kTotal);
}

TEST_F(TlsTransportTest, ARecordSplitAcrossReceivesWaitsForABufferThenOpens) {
    ASSERT_NO_FATAL_FAILURE(connect_through_relay());
    if (IsSkipped()) {
        return;
    }
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open_checked(h);
    ASSERT_NE(s, nullptr);
    settle();
    // Hold everything the initiator seals from here on, starting at a record boundary.
    relay_->limit = relay_->forwarded();
    constexpr uint64_t kTotal = 1024 * 1024;
    const uint64_t sent = pump(s, 1, 0, kTotal);
    ASSERT_TRUE(run_until([&] { return relay_->held().size() >= sent; }));
    const std::span<const std::byte> records = relay_->held();
    ASSERT_EQ(records[0], std::byte{23}) << "held bytes start with an application-data record";
    ASSERT_GT(tls::record_size(records), 10U);
    // Once the sent records have come back to the pool, pass on the first ten bytes of a record
    // with no buffer left to gather it in.
    settle();
    hoard();
    relay_->limit = relay_->forwarded() + 10;
    ASSERT_TRUE(run_until([&] { return transport_metrics_.tls_buffer_waits.value() >= 1; }));
    // Everything else arrives meanwhile; the terminator holds it unread, in order.
    relay_->limit = UINT64_MAX;
    stay_dry_then_verify(*terminator_, s, sent, kTotal);
}

TEST_F(TlsTransportTest, AnIdleConnectionRotatesItsKeysOnTime) {
    // --rekey-interval: a key must not outlive its interval because nothing is being written.
    options_.rekey_interval_ns = 1'000'000'000;
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    settle();
    ASSERT_EQ(transport_metrics_.key_updates_sent.value(), 0U);
    // No stream, no byte to write: only the ticks move the clock past the interval.
    const uint64_t later = base::mono_ns() + 2'000'000'000ULL;
    initiator_->tick(later);
    terminator_->tick(later);
    ASSERT_TRUE(run_until([&] { return transport_metrics_.key_updates_received.value() == 2; }));
    EXPECT_EQ(transport_metrics_.key_updates_sent.value(), 2U) << "each side rotated its own key";
    // The connection still carries bytes under the new keys.
    TestHandler& h = handlers_.emplace_back();
    Stream* s = open(h);
    ASSERT_NE(s, nullptr);
    write_text(s, "after the rotation");
    ASSERT_TRUE(run_until([&] {
        return !term_owner_.accepted.empty() && term_owner_.handler(0).text == "after the rotation";
    }));
}

TEST_F(TlsTransportTest, ClosingATransportEndsItsStreamWithCloseNotify) {
    ASSERT_NO_FATAL_FAILURE(connect());
    if (IsSkipped()) {
        return;
    }
    // The peer can tell a clean close from a cut connection (a truncation) only by close_notify.
    // Only the initiator closes here; the terminator learns of it from the link.
    ::testing::internal::CaptureStderr();
    initiator_->abort("closing for the test");
    const bool closed =
        run_until([&] { return init_owner_.closed == 1 && term_owner_.closed == 1; });
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(closed) << log;
    EXPECT_NE(log.find("peer sent close_notify"), std::string::npos) << log;
    EXPECT_EQ(log.find("without close_notify"), std::string::npos) << log;
}

}  // namespace
}  // namespace ferry::transport
