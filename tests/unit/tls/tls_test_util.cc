#include "tls_test_util.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#ifndef FERRY_GEN_CERTS
#error "FERRY_GEN_CERTS must name tools/gen-certs.sh"
#endif

namespace ferry::tls::testing {
namespace {

class CertDirEnvironment final : public ::testing::Environment {
  public:
    void TearDown() override {
        if (!dir.empty()) {
            std::error_code ignored;
            std::filesystem::remove_all(dir, ignored);
        }
    }
    std::string dir;
};

CertDirEnvironment* environment() {
    static auto* const env = static_cast<CertDirEnvironment*>(
        ::testing::AddGlobalTestEnvironment(new CertDirEnvironment));
    return env;
}
// Registered before main() so TearDown runs even if no test asked for certificates.
[[maybe_unused]] CertDirEnvironment* const g_env = environment();

int keylog_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

void raw_keylog(const SSL* ssl, const char* line) {
    auto* raw = static_cast<RawSsl*>(SSL_get_ex_data(ssl, keylog_index()));
    const std::string text(line);
    const size_t first = text.find(' ');
    const size_t last = text.rfind(' ');
    Bytes secret;
    for (size_t i = last + 1; i + 1 < text.size(); i += 2) {
        secret.push_back(static_cast<std::byte>(std::stoi(text.substr(i, 2), nullptr, 16)));
    }
    raw->secrets()[text.substr(0, first)] = secret;
}

}  // namespace

const std::string& cert_dir() {
    static const std::string dir = [] {
        char tmpl[] = "/tmp/ferry-tls-test-XXXXXX";
        if (mkdtemp(tmpl) == nullptr) {
            std::perror("mkdtemp");
            std::abort();
        }
        const std::string command = std::string(FERRY_GEN_CERTS) + " " + tmpl;
        if (std::system(command.c_str()) != 0) {
            std::fprintf(stderr, "%s failed\n", command.c_str());
            std::abort();
        }
        environment()->dir = tmpl;
        return std::string(tmpl);
    }();
    return dir;
}

std::string cert(const std::string& name) { return cert_dir() + "/" + name; }

TlsConfig server_config() {
    TlsConfig c;
    c.is_server = true;
    c.cert_file = cert("terminator.crt");
    c.key_file = cert("terminator.key");
    c.ca_file = cert("ca.crt");
    return c;
}

TlsConfig client_config() {
    TlsConfig c;
    c.cert_file = cert("initiator.crt");
    c.key_file = cert("initiator.key");
    c.ca_file = cert("ca.crt");
    c.peer_name = "ferry-terminator";
    return c;
}

std::unique_ptr<TlsContext> make_context(const TlsConfig& config) {
    absl::StatusOr<std::unique_ptr<TlsContext>> ctx = TlsContext::create(config);
    if (!ctx.ok()) {
        ADD_FAILURE() << ctx.status();
        return nullptr;
    }
    return std::move(*ctx);
}

Bytes to_bytes(std::string_view text) {
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    return Bytes(p, p + text.size());
}

std::string to_string(std::span<const std::byte> bytes) {
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Bytes drain(Handshake& hs) {
    Bytes out(hs.pending_output());
    out.resize(hs.take_output(out));
    return out;
}

void pump(Handshake& client, Handshake& server) {
    for (int round = 0; round < 16; ++round) {
        (void)client.step();
        const Bytes to_server = drain(client);
        server.feed(to_server);
        (void)server.step();
        const Bytes to_client = drain(server);
        client.feed(to_client);
        if (to_server.empty() && to_client.empty()) {
            (void)client.step();
            return;
        }
    }
}

RawSsl::RawSsl(SSL_CTX* ctx) : ctx_(ctx), ssl_(SSL_new(ctx)) {
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_ex_data(ssl_, keylog_index(), this);
}

RawSsl::~RawSsl() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
}

void RawSsl::feed(std::span<const std::byte> bytes) {
    if (!bytes.empty()) {
        ASSERT_EQ(BIO_write(in_, bytes.data(), static_cast<int>(bytes.size())),
                  static_cast<int>(bytes.size()));
    }
}

Bytes RawSsl::drain() {
    Bytes out(BIO_ctrl_pending(out_));
    if (!out.empty()) {
        out.resize(static_cast<size_t>(BIO_read(out_, out.data(), static_cast<int>(out.size()))));
    }
    return out;
}

TrafficKeys RawSsl::keys(bool is_server) const {
    TrafficKeys k;
    const SSL_CIPHER* suite = SSL_get_current_cipher(ssl_);
    EXPECT_TRUE(
        cipher_from_suite_id(static_cast<uint16_t>(SSL_CIPHER_get_protocol_id(suite)), &k.cipher));
    const Bytes& client = secrets_.at("CLIENT_TRAFFIC_SECRET_0");
    const Bytes& server = secrets_.at("SERVER_TRAFFIC_SECRET_0");
    EXPECT_TRUE(derive_key_iv(k.cipher, is_server ? server : client, &k.tx));
    EXPECT_TRUE(derive_key_iv(k.cipher, is_server ? client : server, &k.rx));
    return k;
}

SSL_CTX* raw_ctx(bool is_server, const std::string& cert_name, int max_version,
                 const char* ciphersuites) {
    SSL_CTX* ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_set_ciphersuites(ctx, ciphersuites);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_keylog_callback(ctx, raw_keylog);
    if (!cert_name.empty()) {
        EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx, cert(cert_name + ".crt").c_str()), 1);
        EXPECT_EQ(
            SSL_CTX_use_PrivateKey_file(ctx, cert(cert_name + ".key").c_str(), SSL_FILETYPE_PEM),
            1);
    }
    EXPECT_EQ(SSL_CTX_load_verify_locations(ctx, cert("ca.crt").c_str(), nullptr), 1);
    SSL_CTX_set_verify(
        ctx, is_server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
        nullptr);
    return ctx;
}

bool raw_handshake(RawSsl& client, RawSsl& server) {
    SSL_set_connect_state(client.ssl());
    SSL_set_accept_state(server.ssl());
    bool client_done = false;
    bool server_done = false;
    for (int round = 0; round < 16 && !(client_done && server_done); ++round) {
        const int c = SSL_do_handshake(client.ssl());
        client_done = c == 1;
        if (c != 1 && SSL_get_error(client.ssl(), c) != SSL_ERROR_WANT_READ) {
            ERR_print_errors_fp(stderr);
            return false;
        }
        server.feed(client.drain());
        const int s = SSL_do_handshake(server.ssl());
        server_done = s == 1;
        if (s != 1 && SSL_get_error(server.ssl(), s) != SSL_ERROR_WANT_READ) {
            ERR_print_errors_fp(stderr);
            return false;
        }
        client.feed(server.drain());
    }
    return client_done && server_done;
}

}  // namespace ferry::tls::testing
