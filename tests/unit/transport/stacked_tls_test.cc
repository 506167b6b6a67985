// TLS stacked on a lower transport that is not a socket: mutual TLS 1.3 over an in-memory byte
// stream (as over a WebSocket or gRPC stream), under two tunnel Sessions, both directions, with
// key updates; the kernel path is never taken (no raw socket below).
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

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
using tunnel::Session;
using tunnel::Stream;
using tunnel::harness::TestHandler;

class StackedTlsTest : public tunnel::harness::SessionHarness {
  protected:
    void SetUp() override {
        SessionHarness::SetUp();
        client_tls_ = tls::testing::make_context(tls::testing::client_config());
        server_tls_ = tls::testing::make_context(tls::testing::server_config());
        ASSERT_NE(client_tls_, nullptr);
        ASSERT_NE(server_tls_, nullptr);
    }

    // TLS (kTLS `mode`) over one end of a memory pair each; bytes cross in pieces of `piece`.
    void connect_in_memory(uint32_t piece, uint64_t rekey_bytes, KtlsMode mode = KtlsMode::Auto) {
        build();
        if (IsSkipped()) {
            return;
        }
        auto a = std::make_unique<MemoryTransport>(*ctx_, piece);
        auto b = std::make_unique<MemoryTransport>(*ctx_, piece);
        MemoryTransport::join(*a, *b);
        initiator_wire_ = a.get();
        TlsOptions options;
        options.ktls = mode;
        options.rekey_bytes = rekey_bytes;
        ASSERT_NO_FATAL_FAILURE(
            start_sessions(std::make_unique<TlsTransport>(*ctx_, transport_metrics_, std::move(a),
                                                          *client_tls_, options),
                           std::make_unique<TlsTransport>(*ctx_, transport_metrics_, std::move(b),
                                                          *server_tls_, options)));
    }

    std::unique_ptr<tls::TlsContext> client_tls_;
    std::unique_ptr<tls::TlsContext> server_tls_;
    MemoryTransport* initiator_wire_ = nullptr;  // owned by the initiator's TLS transport
};

TEST_F(StackedTlsTest, CarriesBothDirectionsOverAMemoryStreamWithKeyUpdates) {
    // 700-byte pieces: nearly every record straddles reads and is gathered. A new key every
    // 64 KiB: dozens of KeyUpdates each way during the transfer.
    ASSERT_NO_FATAL_FAILURE(connect_in_memory(700, 64 * 1024));
    if (IsSkipped()) {
        return;
    }
    EXPECT_STREQ(initiator_->transport_kind(), "tls") << "no socket below: user-space records";
    constexpr uint64_t kUp = 2 << 20;
    constexpr uint64_t kDown = 1 << 20;
    term_owner_.configure = [](TestHandler& h, const pt::Open&) { h.seed = 1; };
    TestHandler& client = handlers_.emplace_back();
    client.seed = 2;
    Stream* s = open(client);
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(run_until([&] { return !term_owner_.accepted.empty(); }));
    TestHandler& server = term_owner_.handler(0);
    uint64_t up = 0;
    uint64_t down = 0;
    between_steps_ = [&] {
        if (up < kUp) {
            up = pump(s, 1, up, kUp);
            if (up == kUp) {
                s->finish();
            }
        }
        if (down < kDown && server.stream != nullptr) {
            down = pump(server.stream, 2, down, kDown);
            if (down == kDown) {
                server.stream->finish();
            }
        }
    };
    ASSERT_TRUE(run_until([&] { return server.fin && client.fin; }))
        << "up " << server.received << " down " << client.received;
    between_steps_ = nullptr;
    EXPECT_EQ(server.received, kUp);
    EXPECT_EQ(client.received, kDown);
    EXPECT_EQ(server.first_mismatch, UINT64_MAX);
    EXPECT_EQ(client.first_mismatch, UINT64_MAX);
    // Keys move on at a write's start once 64 KiB went out under them: writes carry up to
    // Tuning::batch_bytes, so at least (bytes / batch) - 1 rotations per direction.
    EXPECT_GE(transport_metrics_.key_updates_sent.value(), (kUp + kDown) / tuning_.batch_bytes - 2)
        << "both sides rotated their sending keys in place";
    EXPECT_EQ(transport_metrics_.key_updates_received.value(),
              transport_metrics_.key_updates_sent.value());
    EXPECT_GT(transport_metrics_.bytes_copied.value(), 0U) << "split records were gathered";
    EXPECT_EQ(transport_metrics_.tunnel_ktls.value(), 0);
    EXPECT_EQ(metrics_.tunnel_protocol_errors.value(), 0U);
    // The memory wire carries ciphertext: the tunnel preface never shows in the clear.
    ASSERT_GT(initiator_wire_->wire.size(), kUp);
    EXPECT_EQ(initiator_wire_->wire.find("FERRY\r\n"), std::string::npos);
}

TEST_F(StackedTlsTest, KtlsOnIsRefusedWhenNoSocketIsBelow) {
    ASSERT_NO_FATAL_FAILURE(build());
    if (IsSkipped()) {
        return;
    }
    auto a = std::make_unique<MemoryTransport>(*ctx_, 4096);
    auto b = std::make_unique<MemoryTransport>(*ctx_, 4096);
    MemoryTransport::join(*a, *b);
    TlsOptions on;
    on.ktls = KtlsMode::On;
    TlsOptions off;
    off.ktls = KtlsMode::Off;
    initiator_ = make_session(
        std::make_unique<TlsTransport>(*ctx_, transport_metrics_, std::move(a), *client_tls_, on),
        Session::Role::Initiator, &init_owner_, "initiator-node");
    terminator_ = make_session(
        std::make_unique<TlsTransport>(*ctx_, transport_metrics_, std::move(b), *server_tls_, off),
        Session::Role::Terminator, &term_owner_, "terminator-node");
    initiator_->start();
    terminator_->start();
    ASSERT_TRUE(run_until([&] { return init_owner_.closed == 1 && term_owner_.closed == 1; }));
    EXPECT_EQ(init_owner_.ready, 0) << "--ktls=on must not fall back to user space";
    EXPECT_EQ(transport_metrics_.tls_handshakes.value(), 2U) << "the handshake itself completed";
}

TEST_F(StackedTlsTest, ClosingOneSideEndsBothCleanly) {
    ASSERT_NO_FATAL_FAILURE(connect_in_memory(16384, 0));
    if (IsSkipped()) {
        return;
    }
    TestHandler& client = handlers_.emplace_back();
    Stream* s = open(client);
    ASSERT_NE(s, nullptr);
    write_text(s, "hello over memory");
    ASSERT_TRUE(run_until([&] {
        return !term_owner_.accepted.empty() && term_owner_.handler(0).text == "hello over memory";
    }));
    initiator_->abort("test closes");
    ASSERT_TRUE(run_until([&] { return init_owner_.closed == 1 && term_owner_.closed == 1; }));
    EXPECT_TRUE(client.reset.has_value());
    EXPECT_TRUE(term_owner_.handler(0).reset.has_value());
}

}  // namespace
}  // namespace ferry::transport
