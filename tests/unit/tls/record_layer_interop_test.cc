// Cross-checks RecordLayer against OpenSSL's own TLS 1.3 record layer: ferry plays the client
// with keys taken from a raw OpenSSL handshake, OpenSSL stays the server.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <string>

#include "ferry/tls/record_layer.h"
#include "tls_test_util.h"

namespace ferry::tls {
namespace {

using ::ferry::tls::testing::Bytes;
using ::ferry::tls::testing::raw_ctx;
using ::ferry::tls::testing::raw_handshake;
using ::ferry::tls::testing::RawSsl;
using ::ferry::tls::testing::to_bytes;
using ::ferry::tls::testing::to_string;

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>('0' + static_cast<char>(i % 71));
    }
    return s;
}

// Everything SSL_read can return from what was fed so far.
std::string ssl_read_all(SSL* ssl, int* last_error = nullptr) {
    std::string out;
    char buf[4096];
    for (;;) {
        const int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) {
            if (last_error != nullptr) {
                *last_error = SSL_get_error(ssl, n);
            }
            return out;
        }
        out.append(buf, static_cast<size_t>(n));
    }
}

// Opens every record in `wire`, collecting data and noting key updates.
struct Opened {
    std::string data;
    int key_updates = 0;
    bool update_requested = false;
    bool eof = false;
    const char* error = nullptr;
};

Opened open_all(RecordLayer& rl, Bytes& wire) {
    Opened o;
    std::span<std::byte> rest(wire);
    while (!rest.empty()) {
        const OpenResult r = rl.open(rest);
        switch (r.status) {
            case OpenStatus::Data:
                o.data += to_string(r.plaintext);
                break;
            case OpenStatus::KeyUpdate:
                ++o.key_updates;
                o.update_requested |= r.update_requested;
                break;
            case OpenStatus::Eof:
                o.eof = true;
                break;
            case OpenStatus::Skipped:
                break;
            case OpenStatus::NeedMore:
                o.error = "incomplete record";
                return o;
            case OpenStatus::Error:
                o.error = r.error;
                return o;
        }
        rest = rest.subspan(r.consumed);
    }
    return o;
}

Bytes seal_text(RecordLayer& rl, const std::string& text) {
    Bytes out(sealed_size(text.size()));
    const SealResult r = rl.seal(to_bytes(text), out);
    EXPECT_EQ(r.consumed, text.size());
    out.resize(r.written);
    return out;
}

void ssl_write(SSL* ssl, const std::string& text) {
    ASSERT_EQ(SSL_write(ssl, text.data(), static_cast<int>(text.size())),
              static_cast<int>(text.size()));
}

class OpensslInterop : public ::testing::TestWithParam<const char*> {
  protected:
    void SetUp() override {
        client_ = std::make_unique<RawSsl>(raw_ctx(false, "initiator", TLS1_3_VERSION, GetParam()));
        server_ = std::make_unique<RawSsl>(raw_ctx(true, "terminator", TLS1_3_VERSION, GetParam()));
        ASSERT_TRUE(raw_handshake(*client_, *server_));
        ASSERT_STREQ(SSL_get_cipher_name(server_->ssl()), GetParam());
        ours_ = std::make_unique<RecordLayer>(client_->keys(/*is_server=*/false));
    }

    SSL* server() { return server_->ssl(); }

    std::unique_ptr<RawSsl> client_;
    std::unique_ptr<RawSsl> server_;
    std::unique_ptr<RecordLayer> ours_;
};

TEST_P(OpensslInterop, OpensslReadsWhatWeSeal) {
    const std::string text = pattern(70000);
    server_->feed(seal_text(*ours_, text));
    EXPECT_EQ(ssl_read_all(server()), text);
}

TEST_P(OpensslInterop, WeOpenWhatOpensslWrites) {
    const std::string text = pattern(50000);
    ssl_write(server(), text);
    // Padded records too (RFC 8446 §5.4): the content type sits before the zeros.
    SSL_set_block_padding(server(), 512);
    ssl_write(server(), "padded");
    Bytes wire = server_->drain();
    const Opened o = open_all(*ours_, wire);
    ASSERT_EQ(o.error, nullptr) << o.error;
    EXPECT_EQ(o.data, text + "padded");
}

TEST_P(OpensslInterop, NewSessionTicketsAreAnErrorUnlessDropped) {
    // What a server not ours does whatever the client asks (RFC 8446 §4.6.1).
    ASSERT_EQ(SSL_new_session_ticket(server()), 1);
    ASSERT_EQ(SSL_new_session_ticket(server()), 1);
    ssl_write(server(), "after the tickets");
    Bytes wire = server_->drain();
    Bytes copy = wire;
    RecordLayer strict(client_->keys(/*is_server=*/false));
    const Opened refused = open_all(strict, copy);
    ASSERT_NE(refused.error, nullptr);
    EXPECT_STREQ(refused.error, "unexpected NewSessionTicket (tickets are off)");
    ours_->drop_tickets();
    const Opened o = open_all(*ours_, wire);
    ASSERT_EQ(o.error, nullptr) << o.error;
    EXPECT_EQ(o.data, "after the tickets");
}

TEST_P(OpensslInterop, WeFollowOpensslKeyUpdates) {
    ASSERT_EQ(SSL_key_update(server(), SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    ssl_write(server(), "after the first update");
    Bytes wire = server_->drain();
    Opened o = open_all(*ours_, wire);
    ASSERT_EQ(o.error, nullptr) << o.error;
    EXPECT_EQ(o.key_updates, 1);
    EXPECT_FALSE(o.update_requested);
    EXPECT_EQ(o.data, "after the first update");

    // update_requested: we must rotate our own TX key before sending more.
    ASSERT_EQ(SSL_key_update(server(), SSL_KEY_UPDATE_REQUESTED), 1);
    ssl_write(server(), "rotate too");
    wire = server_->drain();
    o = open_all(*ours_, wire);
    ASSERT_EQ(o.error, nullptr) << o.error;
    EXPECT_TRUE(o.update_requested);
    EXPECT_EQ(o.data, "rotate too");
    Bytes answer(kKeyUpdateRecordSize);
    ASSERT_EQ(ours_->update_tx_key(answer), kKeyUpdateRecordSize);
    server_->feed(answer);
    server_->feed(seal_text(*ours_, "rotated"));
    EXPECT_EQ(ssl_read_all(server()), "rotated");
    EXPECT_EQ(ours_->stats().rx_rotations, 2u);
    EXPECT_EQ(ours_->stats().tx_rotations, 1u);
}

TEST_P(OpensslInterop, OpensslFollowsOurKeyUpdates) {
    for (int i = 0; i < 3; ++i) {
        Bytes update(kKeyUpdateRecordSize);
        ASSERT_EQ(ours_->update_tx_key(update), kKeyUpdateRecordSize);
        server_->feed(update);
        const std::string text = "generation " + std::to_string(i + 1);
        server_->feed(seal_text(*ours_, text));
        EXPECT_EQ(ssl_read_all(server()), text);
    }

    // Asking OpenSSL to rotate: its next write carries its KeyUpdate first.
    Bytes update(kKeyUpdateRecordSize);
    ASSERT_EQ(ours_->update_tx_key(update, /*request_peer_update=*/true), kKeyUpdateRecordSize);
    server_->feed(update);
    EXPECT_EQ(ssl_read_all(server()), "");
    ssl_write(server(), "answered");
    Bytes wire = server_->drain();
    const Opened o = open_all(*ours_, wire);
    ASSERT_EQ(o.error, nullptr) << o.error;
    EXPECT_EQ(o.key_updates, 1);
    EXPECT_EQ(o.data, "answered");
}

TEST_P(OpensslInterop, CloseNotifyBothWays) {
    Bytes close(kAlertRecordSize);
    ASSERT_EQ(ours_->seal_alert(AlertDescription::CloseNotify, close), kAlertRecordSize);
    server_->feed(close);
    int err = 0;
    EXPECT_EQ(ssl_read_all(server(), &err), "");
    EXPECT_EQ(err, SSL_ERROR_ZERO_RETURN);

    ssl_write(server(), "last words");
    (void)SSL_shutdown(server());
    Bytes wire = server_->drain();
    const Opened o = open_all(*ours_, wire);
    ASSERT_EQ(o.error, nullptr) << o.error;
    EXPECT_EQ(o.data, "last words");
    EXPECT_TRUE(o.eof);
}

INSTANTIATE_TEST_SUITE_P(AllSuites, OpensslInterop,
                         ::testing::Values("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                           "TLS_CHACHA20_POLY1305_SHA256"));

}  // namespace
}  // namespace ferry::tls
