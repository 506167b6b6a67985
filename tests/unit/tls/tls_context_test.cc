#include "ferry/tls/tls_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "ferry/tls/handshake.h"
#include "tls_test_util.h"

namespace ferry::tls {
namespace {

using ::ferry::tls::testing::cert;
using ::ferry::tls::testing::client_config;
using ::ferry::tls::testing::make_context;
using ::ferry::tls::testing::pump;
using ::ferry::tls::testing::server_config;
using ::testing::HasSubstr;

std::string error_of(const TlsConfig& config) {
    absl::StatusOr<std::unique_ptr<TlsContext>> ctx = TlsContext::create(config);
    EXPECT_FALSE(ctx.ok());
    return ctx.ok() ? "" : std::string(ctx.status().message());
}

TEST(TlsContext, LoadsTheTestPki) {
    EXPECT_NE(make_context(server_config()), nullptr);
    EXPECT_NE(make_context(client_config()), nullptr);
}

TEST(TlsContext, AForeignServerClientTrustsTheSystemStoreWithoutACertificate) {
    TlsConfig c;
    c.foreign_server = true;
    c.peer_name = "grpc.example.com";
    c.alpn = "h2";
    EXPECT_NE(make_context(c), nullptr);
    // Only a client may go without a certificate; a server still needs one.
    c.is_server = true;
    EXPECT_FALSE(TlsContext::create(c).ok());
}

TEST(TlsContext, NamesTheFileThatFailedToLoad) {
    TlsConfig c = server_config();
    c.cert_file = "/nonexistent/tls.crt";
    const std::string error = error_of(c);
    EXPECT_THAT(error, HasSubstr("loading certificate chain /nonexistent/tls.crt"));
    EXPECT_THAT(error, HasSubstr("No such file or directory"));

    c = server_config();
    c.key_file = cert("ca.crt");  // a certificate where the key should be
    EXPECT_THAT(error_of(c), HasSubstr("loading private key " + cert("ca.crt")));

    c = server_config();
    c.ca_file = "/nonexistent/ca.crt";
    EXPECT_THAT(error_of(c), HasSubstr("loading CA /nonexistent/ca.crt"));
}

TEST(TlsContext, RejectsAKeyThatDoesNotMatchTheCertificate) {
    TlsConfig c = server_config();
    c.key_file = cert("initiator.key");
    const std::string error = error_of(c);
    EXPECT_THAT(error, HasSubstr("loading private key " + cert("initiator.key")));
    EXPECT_THAT(error, HasSubstr("key values mismatch"));
}

TEST(TlsContext, RejectsSuitesTheRecordLayerLacks) {
    TlsConfig c = server_config();
    c.ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_SHA256";
    EXPECT_THAT(error_of(c), HasSubstr("ciphersuite 'TLS_AES_128_CCM_SHA256' is not supported"));
}

TEST(TlsContext, ClientNeedsThePeerName) {
    TlsConfig c = client_config();
    c.peer_name.clear();
    EXPECT_THAT(error_of(c), HasSubstr("peer_name"));
}

TEST(TlsContext, ReloadPicksUpRotatedCertificates) {
    // Copies of the terminator's files that the test then "rotates" on disk.
    const std::string dir = testing::cert_dir() + "/reload";
    std::filesystem::create_directories(dir);
    const auto put = [&](const std::string& from, const std::string& to) {
        std::filesystem::copy_file(cert(from), dir + "/" + to,
                                   std::filesystem::copy_options::overwrite_existing);
    };
    put("terminator.crt", "tls.crt");
    put("terminator.key", "tls.key");
    TlsConfig sc = server_config();
    sc.cert_file = dir + "/tls.crt";
    sc.key_file = dir + "/tls.key";
    auto server_ctx = make_context(sc);
    auto client_ctx = make_context(client_config());

    // Rotated to a certificate with the wrong name: only handshakes after reload() see it.
    put("wrong-san-terminator.crt", "tls.crt");
    put("wrong-san-terminator.key", "tls.key");
    Handshake before_server(*server_ctx);
    ASSERT_TRUE(server_ctx->reload().ok());
    EXPECT_EQ(server_ctx->generation(), 1u);
    Handshake before_client(*client_ctx);
    pump(before_client, before_server);
    EXPECT_EQ(before_client.step(), HandshakeStep::Done) << before_client.failure_reason();

    Handshake after_server(*server_ctx);
    Handshake after_client(*client_ctx);
    pump(after_client, after_server);
    EXPECT_EQ(after_client.step(), HandshakeStep::Failed);
    EXPECT_THAT(after_client.failure_reason(), HasSubstr("peer name mismatch"));

    // A broken rotation keeps the context that works.
    std::filesystem::resize_file(dir + "/tls.key", 10);
    EXPECT_FALSE(server_ctx->reload().ok());
    EXPECT_EQ(server_ctx->generation(), 1u);
    EXPECT_NE(server_ctx->ssl_ctx(), nullptr);
}

}  // namespace
}  // namespace ferry::tls
