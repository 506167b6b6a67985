#include "ferry/tls/handshake.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <random>

#include "ferry/tls/record_layer.h"
#include "ferry/tls/tls_context.h"
#include "tls_test_util.h"

namespace ferry::tls {
namespace {

using ::ferry::tls::testing::Bytes;
using ::ferry::tls::testing::client_config;
using ::ferry::tls::testing::drain;
using ::ferry::tls::testing::make_context;
using ::ferry::tls::testing::pump;
using ::ferry::tls::testing::raw_ctx;
using ::ferry::tls::testing::RawSsl;
using ::ferry::tls::testing::server_config;
using ::ferry::tls::testing::to_bytes;
using ::ferry::tls::testing::to_string;
using ::testing::HasSubstr;

bool same(std::span<const std::byte> a, std::span<const std::byte> b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

void expect_mirrored(const DirectionKeys& tx, const DirectionKeys& rx) {
    EXPECT_EQ(tx.cipher, rx.cipher);
    EXPECT_TRUE(same(tx.secret_bytes(), rx.secret_bytes()));
    EXPECT_TRUE(same(tx.key_bytes(), rx.key_bytes()));
    EXPECT_TRUE(same(tx.iv, rx.iv));
    EXPECT_EQ(tx.seq, 0u);
    EXPECT_EQ(rx.seq, 0u);
}

class HandshakeSuite : public ::testing::TestWithParam<std::pair<const char*, Cipher>> {};

TEST_P(HandshakeSuite, MutualAuthDerivesMirroredKeys) {
    TlsConfig sc = server_config();
    TlsConfig cc = client_config();
    sc.ciphersuites = cc.ciphersuites = GetParam().first;
    auto server_ctx = make_context(sc);
    auto client_ctx = make_context(cc);
    ASSERT_TRUE(server_ctx && client_ctx);
    Handshake server(*server_ctx);
    Handshake client(*client_ctx);
    pump(client, server);

    ASSERT_EQ(client.step(), HandshakeStep::Done) << client.failure_reason();
    ASSERT_EQ(server.step(), HandshakeStep::Done) << server.failure_reason();
    EXPECT_EQ(client.keys().cipher, GetParam().second);
    EXPECT_EQ(server.keys().cipher, GetParam().second);
    expect_mirrored(client.keys().tx, server.keys().rx);
    expect_mirrored(server.keys().tx, client.keys().rx);
    EXPECT_FALSE(same(client.keys().tx.key_bytes(), client.keys().rx.key_bytes()));
    EXPECT_EQ(server.peer_identity(), "ferry-initiator");
    EXPECT_EQ(client.peer_identity(), "ferry-terminator");
    EXPECT_TRUE(server.leftover_input().empty());
    EXPECT_TRUE(client.leftover_input().empty());
}

INSTANTIATE_TEST_SUITE_P(
    AllSuites, HandshakeSuite,
    ::testing::Values(std::make_pair("TLS_AES_128_GCM_SHA256", Cipher::Aes128Gcm),
                      std::make_pair("TLS_AES_256_GCM_SHA384", Cipher::Aes256Gcm),
                      std::make_pair("TLS_CHACHA20_POLY1305_SHA256", Cipher::Chacha20Poly1305)));

TEST(Handshake, KeepsApplicationDataThatArrivesWithTheFinished) {
    auto server_ctx = make_context(server_config());
    auto client_ctx = make_context(client_config());
    Handshake server(*server_ctx);
    Handshake client(*client_ctx);

    // ClientHello -> server flight -> client is done with its Finished still pending.
    ASSERT_EQ(client.step(), HandshakeStep::WantIo);
    server.feed(drain(client));
    ASSERT_EQ(server.step(), HandshakeStep::WantIo);
    client.feed(drain(server));
    ASSERT_EQ(client.step(), HandshakeStep::Done) << client.failure_reason();

    // The client's last flight and its first application record reach the server together.
    Bytes wire = drain(client);
    RecordLayer client_records(client.keys());
    Bytes sealed(sealed_size(5));
    ASSERT_EQ(client_records.seal(to_bytes("hello"), sealed).written, sealed.size());
    wire.insert(wire.end(), sealed.begin(), sealed.end());
    server.feed(wire);
    ASSERT_EQ(server.step(), HandshakeStep::Done) << server.failure_reason();

    Bytes leftover(server.leftover_input().begin(), server.leftover_input().end());
    EXPECT_EQ(leftover, sealed);
    RecordLayer server_records(server.keys());
    const OpenResult r = server_records.open(leftover);
    ASSERT_EQ(r.status, OpenStatus::Data) << r.error;
    EXPECT_EQ(to_string(r.plaintext), "hello");
}

TEST(Handshake, StepIsIdempotentOnceDone) {
    auto server_ctx = make_context(server_config());
    auto client_ctx = make_context(client_config());
    Handshake server(*server_ctx);
    Handshake client(*client_ctx);
    pump(client, server);
    EXPECT_EQ(server.step(), HandshakeStep::Done);
    EXPECT_EQ(server.step(), HandshakeStep::Done);
    EXPECT_EQ(server.pending_output(), 0u);
}

// Runs client and server handshakes to the end; returns them for inspection.
struct Outcome {
    std::unique_ptr<TlsContext> server_ctx;
    std::unique_ptr<TlsContext> client_ctx;
    std::unique_ptr<Handshake> server;
    std::unique_ptr<Handshake> client;
};

Outcome run(const TlsConfig& sc, const TlsConfig& cc) {
    Outcome o;
    o.server_ctx = make_context(sc);
    o.client_ctx = make_context(cc);
    o.server = std::make_unique<Handshake>(*o.server_ctx);
    o.client = std::make_unique<Handshake>(*o.client_ctx);
    pump(*o.client, *o.server);
    return o;
}

TEST(HandshakeFailure, ServerCertificateFromAnotherCa) {
    TlsConfig sc = server_config();
    sc.cert_file = testing::cert("foreign-terminator.crt");
    sc.key_file = testing::cert("foreign-terminator.key");
    Outcome o = run(sc, client_config());
    ASSERT_EQ(o.client->step(), HandshakeStep::Failed);
    EXPECT_EQ(o.client->failure_reason(),
              "peer certificate verify failed: unable to get local issuer certificate");
    ASSERT_EQ(o.server->step(), HandshakeStep::Failed);
    EXPECT_EQ(o.server->failure_reason(), "peer sent alert unknown_ca");
}

TEST(HandshakeFailure, ExpiredClientCertificate) {
    TlsConfig cc = client_config();
    cc.cert_file = testing::cert("expired-initiator.crt");
    cc.key_file = testing::cert("expired-initiator.key");
    Outcome o = run(server_config(), cc);
    ASSERT_EQ(o.server->step(), HandshakeStep::Failed);
    EXPECT_EQ(o.server->failure_reason(),
              "peer certificate verify failed: certificate has expired");
}

TEST(HandshakeFailure, ClientLearnsOfItsRejectionFromTheRecordLayer) {
    // TLS 1.3 clients finish first; a server that then rejects the client certificate sends
    // its alert under the application keys, so the record layer is where the client hears it.
    TlsConfig cc = client_config();
    cc.cert_file = testing::cert("expired-initiator.crt");
    cc.key_file = testing::cert("expired-initiator.key");
    auto server_ctx = make_context(server_config());
    auto client_ctx = make_context(cc);
    Handshake server(*server_ctx);
    Handshake client(*client_ctx);
    ASSERT_EQ(client.step(), HandshakeStep::WantIo);
    server.feed(drain(client));
    ASSERT_EQ(server.step(), HandshakeStep::WantIo);
    client.feed(drain(server));
    ASSERT_EQ(client.step(), HandshakeStep::Done);
    server.feed(drain(client));
    ASSERT_EQ(server.step(), HandshakeStep::Failed);

    Bytes alert = drain(server);
    RecordLayer records(client.keys());
    const OpenResult r = records.open(alert);
    ASSERT_EQ(r.status, OpenStatus::Error);
    EXPECT_TRUE(r.peer_alert);
    EXPECT_STREQ(r.error, "peer sent alert certificate_expired");
}

TEST(HandshakeFailure, ServerNameNotInCertificate) {
    TlsConfig sc = server_config();
    sc.cert_file = testing::cert("wrong-san-terminator.crt");
    sc.key_file = testing::cert("wrong-san-terminator.key");
    Outcome o = run(sc, client_config());
    ASSERT_EQ(o.client->step(), HandshakeStep::Failed);
    EXPECT_EQ(o.client->failure_reason(),
              "peer name mismatch: expected ferry-terminator, certificate names "
              "[not-ferry-terminator]");
}

TEST(HandshakeFailure, ClientNotInAllowedPeerNames) {
    TlsConfig sc = server_config();
    sc.allowed_peer_names = {"ferry-initiator-eu", "ferry-initiator-us"};
    Outcome o = run(sc, client_config());
    ASSERT_EQ(o.server->step(), HandshakeStep::Failed);
    EXPECT_EQ(o.server->failure_reason(),
              "peer identity not allowed: certificate names [ferry-initiator] are not in "
              "allowed_peer_names");
}

TEST(Handshake, AcceptsClientInAllowedPeerNamesIgnoringCase) {
    TlsConfig sc = server_config();
    sc.allowed_peer_names = {"someone-else", "FERRY-Initiator"};
    Outcome o = run(sc, client_config());
    EXPECT_EQ(o.server->step(), HandshakeStep::Done) << o.server->failure_reason();
    EXPECT_EQ(o.client->step(), HandshakeStep::Done) << o.client->failure_reason();
}

// ---- identity: subject alternative names only, never the CN (RFC 9525) -------------------------

TEST(HandshakeFailure, AllowedPeersIgnoreTheCnOfACertificateWhoseSansNameSomeoneElse) {
    // Signed by the tunnel CA, CN "ferry-initiator", SAN DNS:someone-else.
    TlsConfig sc = server_config();
    sc.allowed_peer_names = {"ferry-initiator"};
    TlsConfig cc = client_config();
    cc.cert_file = testing::cert("impostor-initiator.crt");
    cc.key_file = testing::cert("impostor-initiator.key");
    Outcome o = run(sc, cc);
    ASSERT_EQ(o.server->step(), HandshakeStep::Failed);
    EXPECT_EQ(o.server->failure_reason(),
              "peer identity not allowed: certificate names [someone-else] are not in "
              "allowed_peer_names");
}

TEST(HandshakeFailure, PeerNameIgnoresTheCnOfACertificateWithOnlyAUriSan) {
    // CN "ferry-terminator" but no DNS SAN: OpenSSL's default would fall back to the CN.
    TlsConfig sc = server_config();
    sc.cert_file = testing::cert("impostor-terminator.crt");
    sc.key_file = testing::cert("impostor-terminator.key");
    Outcome o = run(sc, client_config());
    ASSERT_EQ(o.client->step(), HandshakeStep::Failed);
    EXPECT_EQ(o.client->failure_reason(),
              "peer name mismatch: expected ferry-terminator, certificate names "
              "[spiffe://elsewhere.example/ns/other/sa/server]");
}

TEST(Handshake, SpiffeIdsIdentifyBothEnds) {
    TlsConfig sc = server_config();
    sc.cert_file = testing::cert("spiffe-terminator.crt");
    sc.key_file = testing::cert("spiffe-terminator.key");
    sc.allowed_peer_names = {"spiffe://cluster-a.example/ns/ferry/sa/initiator"};
    TlsConfig cc = client_config();
    cc.cert_file = testing::cert("spiffe-initiator.crt");
    cc.key_file = testing::cert("spiffe-initiator.key");
    cc.peer_name = "spiffe://cluster-b.example/ns/ferry/sa/terminator";
    Outcome o = run(sc, cc);
    ASSERT_EQ(o.server->step(), HandshakeStep::Done) << o.server->failure_reason();
    ASSERT_EQ(o.client->step(), HandshakeStep::Done) << o.client->failure_reason();
    EXPECT_EQ(o.server->peer_identity(), "spiffe://cluster-a.example/ns/ferry/sa/initiator");
    EXPECT_EQ(o.client->peer_identity(), "spiffe://cluster-b.example/ns/ferry/sa/terminator");
}

TEST(HandshakeFailure, ASpiffeIdMustMatchExactly) {
    TlsConfig sc = server_config();
    sc.cert_file = testing::cert("spiffe-terminator.crt");
    sc.key_file = testing::cert("spiffe-terminator.key");
    TlsConfig cc = client_config();
    cc.peer_name = "spiffe://cluster-b.example/ns/ferry/sa/TERMINATOR";
    Outcome o = run(sc, cc);
    ASSERT_EQ(o.client->step(), HandshakeStep::Failed);
    EXPECT_EQ(o.client->failure_reason(),
              "peer name mismatch: expected spiffe://cluster-b.example/ns/ferry/sa/TERMINATOR, "
              "certificate names [spiffe://cluster-b.example/ns/ferry/sa/terminator]");
}

TEST(Handshake, AnIpPeerNameMatchesAnIpSan) {
    TlsConfig cc = client_config();
    cc.peer_name = "127.0.0.1";  // the terminator certificate carries IP:127.0.0.1
    Outcome o = run(server_config(), cc);
    EXPECT_EQ(o.client->step(), HandshakeStep::Done) << o.client->failure_reason();
}

TEST(Handshake, AForeignServerClientNeedsNoCertificateOfItsOwn) {
    // A grpcs:// upstream: a server that asks no client certificate and picks h2.
    TlsConfig sc = server_config();
    sc.verify_peer = false;
    sc.alpn = "h2";
    TlsConfig cc = client_config();
    cc.foreign_server = true;
    cc.cert_file.clear();
    cc.key_file.clear();
    cc.alpn = "h2";
    Outcome o = run(sc, cc);
    EXPECT_EQ(o.client->step(), HandshakeStep::Done) << o.client->failure_reason();
    EXPECT_EQ(o.server->step(), HandshakeStep::Done) << o.server->failure_reason();
}

// Drives a raw OpenSSL client against a ferry server until the server settles.
HandshakeStep raw_client_against(Handshake& server, RawSsl& client) {
    SSL_set_connect_state(client.ssl());
    for (int round = 0; round < 8; ++round) {
        (void)SSL_do_handshake(client.ssl());
        server.feed(client.drain());
        const HandshakeStep s = server.step();
        client.feed(drain(server));
        if (s != HandshakeStep::WantIo) {
            return s;
        }
    }
    return server.step();
}

TEST(HandshakeFailure, ClientWithoutCertificate) {
    auto server_ctx = make_context(server_config());
    Handshake server(*server_ctx);
    RawSsl client(raw_ctx(false, ""));
    ASSERT_EQ(raw_client_against(server, client), HandshakeStep::Failed);
    EXPECT_EQ(server.failure_reason(), "no client certificate");
}

TEST(HandshakeFailure, Tls12OnlyClient) {
    auto server_ctx = make_context(server_config());
    Handshake server(*server_ctx);
    RawSsl client(raw_ctx(false, "initiator", TLS1_2_VERSION));
    ASSERT_EQ(raw_client_against(server, client), HandshakeStep::Failed);
    EXPECT_EQ(server.failure_reason(),
              "protocol version: peer offered TLS 1.2, ferry requires TLS 1.3");
    // The client got a protocol_version alert.
    EXPECT_NE(SSL_do_handshake(client.ssl()), 1);
    EXPECT_EQ(ERR_GET_REASON(ERR_peek_error()), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    ERR_clear_error();
}

TEST(HandshakeFailure, PlaintextHttpToTheServer) {
    auto server_ctx = make_context(server_config());
    Handshake server(*server_ctx);
    server.feed(to_bytes("GET / HTTP/1.1\r\nHost: ferry-terminator\r\n\r\n"));
    ASSERT_EQ(server.step(), HandshakeStep::Failed);
    EXPECT_EQ(server.failure_reason(),
              "not TLS: first bytes look like HTTP/plaintext (\"GET / HTTP/1.1\")");
}

TEST(HandshakeFailure, PlaintextIsRecognisedFromItsFirstByte) {
    auto server_ctx = make_context(server_config());
    Handshake server(*server_ctx);
    server.feed(to_bytes("P"));
    ASSERT_EQ(server.step(), HandshakeStep::Failed);
    EXPECT_THAT(server.failure_reason(),
                HasSubstr("not TLS: first bytes look like HTTP/plaintext"));
    server.feed(to_bytes("OST / HTTP/1.1\r\n"));  // ignored once failed
    EXPECT_EQ(server.step(), HandshakeStep::Failed);
}

TEST(HandshakeFailure, PlaintextAnswerToTheClient) {
    auto client_ctx = make_context(client_config());
    Handshake client(*client_ctx);
    ASSERT_EQ(client.step(), HandshakeStep::WantIo);
    client.feed(to_bytes("HTTP/1.1 400 Bad Request\r\n\r\n"));
    ASSERT_EQ(client.step(), HandshakeStep::Failed);
    EXPECT_THAT(client.failure_reason(),
                HasSubstr("not TLS: first bytes look like HTTP/plaintext"));
}

TEST(HandshakeFailure, RandomBytesToTheServer) {
    std::mt19937 rng(20240611);
    for (int trial = 0; trial < 200; ++trial) {
        Bytes junk(1 + rng() % 600);
        for (auto& b : junk) {
            b = static_cast<std::byte>(rng());
        }
        if (junk[0] == std::byte{22}) {
            junk[0] = std::byte{0x9c};
        }
        auto server_ctx = make_context(server_config());
        Handshake server(*server_ctx);
        server.feed(junk);
        ASSERT_EQ(server.step(), HandshakeStep::Failed);
        EXPECT_THAT(server.failure_reason(), HasSubstr("not TLS: first"));
    }
}

TEST(HandshakeFailure, GarbageBehindAHandshakeRecordHeader) {
    std::mt19937 rng(7);
    auto server_ctx = make_context(server_config());
    for (int trial = 0; trial < 100; ++trial) {
        Bytes junk(5 + 300);
        for (auto& b : junk) {
            b = static_cast<std::byte>(rng());
        }
        junk[0] = std::byte{22};
        junk[1] = std::byte{3};
        junk[2] = std::byte{1};
        junk[3] = std::byte{1};
        junk[4] = std::byte{44};
        Handshake server(*server_ctx);
        // Byte by byte: the header check and OpenSSL both see every possible split.
        HandshakeStep s = HandshakeStep::WantIo;
        for (size_t i = 0; i < junk.size() && s == HandshakeStep::WantIo; ++i) {
            server.feed(std::span(junk).subspan(i, 1));
            s = server.step();
        }
        ASSERT_EQ(s, HandshakeStep::Failed);
        EXPECT_FALSE(server.failure_reason().empty());
    }
}

TEST(HandshakeFailure, OversizedFirstRecord) {
    auto server_ctx = make_context(server_config());
    Handshake server(*server_ctx);
    const Bytes header = {std::byte{22}, std::byte{3}, std::byte{1}, std::byte{0x48},
                          std::byte{0x01}};
    server.feed(header);
    ASSERT_EQ(server.step(), HandshakeStep::Failed);
    EXPECT_EQ(server.failure_reason(), "not TLS: first record length 18433");
}

}  // namespace
}  // namespace ferry::tls
