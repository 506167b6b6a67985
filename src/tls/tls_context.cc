#include "ferry/tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "internal/ssl_hooks.h"

namespace ferry::tls {
namespace {

struct CtxDeleter {
    void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

absl::Status load_error(const std::string& what, const std::string& file) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", file, ": ", internal::drain_openssl_errors("unknown error")));
}

// Picks `arg` (a std::string, in wire form after the length byte) from the client's list.
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* arg) {
    const auto* wanted = static_cast<const std::string*>(arg);
    for (unsigned int i = 0; i < inlen;) {
        const unsigned int len = in[i];
        if (i + 1 + len > inlen) {
            break;
        }
        if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == *wanted) {
            *out = in + i + 1;
            *outlen = static_cast<unsigned char>(len);
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    // RFC 7301 §3.2 allows a server to go on without ALPN; clients of HTTP/1.1 then still work.
    return SSL_TLSEXT_ERR_NOACK;
}

absl::StatusOr<CtxPtr> build(const TlsConfig& config) {
    const bool verify = config.verify_peer || !config.is_server;
    // A client of a server that is not ours may go without a certificate, and trusts the
    // system's store when no CA is named.
    const bool foreign = config.foreign_server && !config.is_server;
    const bool own_cert = !foreign || !config.cert_file.empty();
    if ((own_cert && (config.cert_file.empty() || config.key_file.empty())) ||
        (verify && !foreign && config.ca_file.empty())) {
        return absl::InvalidArgumentError("TLS needs cert_file, key_file and ca_file");
    }
    if (!config.is_server && config.peer_name.empty()) {
        // Without it any certificate from the CA would do, including another client's.
        return absl::InvalidArgumentError("TLS client needs peer_name (the server's DNS SAN)");
    }
    for (absl::string_view suite : absl::StrSplit(config.ciphersuites, ':')) {
        // The record layer implements these three; OpenSSL would also accept the CCM suites.
        if (suite != "TLS_AES_128_GCM_SHA256" && suite != "TLS_AES_256_GCM_SHA384" &&
            suite != "TLS_CHACHA20_POLY1305_SHA256") {
            return absl::InvalidArgumentError(absl::StrCat(
                "ciphersuite '", suite, "' is not supported (use ", kDefaultCiphersuites, ")"));
        }
    }
    ERR_clear_error();
    CtxPtr ctx(SSL_CTX_new(config.is_server ? TLS_server_method() : TLS_client_method()));
    if (ctx == nullptr) {
        return absl::InternalError(
            absl::StrCat("SSL_CTX_new: ", internal::drain_openssl_errors("out of memory")));
    }
    SSL_CTX* c = ctx.get();
    if (SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1) {
        return absl::InternalError("OpenSSL refuses TLS 1.3 only");
    }
    if (SSL_CTX_set_ciphersuites(c, config.ciphersuites.c_str()) != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("ciphersuites '", config.ciphersuites,
                         "': ", internal::drain_openssl_errors("no usable TLS 1.3 ciphersuite")));
    }
    if (own_cert) {
        if (SSL_CTX_use_certificate_chain_file(c, config.cert_file.c_str()) != 1) {
            return load_error("loading certificate chain", config.cert_file);
        }
        if (SSL_CTX_use_PrivateKey_file(c, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            return load_error("loading private key", config.key_file);
        }
        if (SSL_CTX_check_private_key(c) != 1) {
            return load_error(absl::StrCat("private key ", config.key_file, " does not match"),
                              config.cert_file);
        }
    }
    if (verify && !config.ca_file.empty() &&
        SSL_CTX_load_verify_locations(c, config.ca_file.c_str(), nullptr) != 1) {
        return load_error("loading CA", config.ca_file);
    }
    if (verify && config.ca_file.empty() && SSL_CTX_set_default_verify_paths(c) != 1) {
        return load_error("loading the system's trust store", "(OpenSSL's default paths)");
    }
    if (foreign && !config.alpn.empty()) {
        // RFC 7301 §3.1: the list in wire form, each name after its length byte.
        if (config.alpn.size() > 255) {
            return absl::InvalidArgumentError("ALPN protocol name longer than 255 bytes");
        }
        std::string wire(1, static_cast<char>(config.alpn.size()));
        wire += config.alpn;
        if (SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(wire.data()),
                                    static_cast<unsigned int>(wire.size())) != 0) {
            return absl::InternalError("SSL_CTX_set_alpn_protos failed");
        }
    }

    // RFC 8446 §4.6.1: with no tickets and no cache nothing but KeyUpdate and alerts can follow
    // the handshake, which is what lets the record layer and kTLS take over the connection.
    SSL_CTX_set_num_tickets(c, 0);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION);
    // OpenSSL's record buffers go back while a handshake waits for the peer: a connection
    // stalled mid-handshake holds only its state (records after the handshake are ours).
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_keylog_callback(c, internal::on_keylog_line);

    if (config.is_server && !config.alpn.empty()) {
        SSL_CTX_set_alpn_select_cb(c, select_alpn, const_cast<std::string*>(&config.alpn));
    }
    if (!verify) {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
        return ctx;
    }
    int mode = SSL_VERIFY_PEER;
    if (config.is_server) {
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_client_hello_cb(c, internal::on_client_hello, nullptr);
        // Lists the CA in CertificateRequest so a client with several certificates picks ours.
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.ca_file.c_str());
        if (names == nullptr) {
            return load_error("reading CA names from", config.ca_file);
        }
        SSL_CTX_set_client_CA_list(c, names);
    } else {
        // DNS names and IP addresses: OpenSSL's RFC 6125 matching, SANs only (no CN fallback,
        // RFC 9525). A URI (a SPIFFE ID) is matched against the URI SANs in the verify callback.
        X509_VERIFY_PARAM* param = SSL_CTX_get0_param(c);
        X509_VERIFY_PARAM_set_hostflags(
            param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        const std::string& name = config.peer_name;
        const bool uri = name.find("://") != std::string::npos;
        const bool ip = !uri && X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
        if (!uri && !ip && X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0) != 1) {
            return absl::InvalidArgumentError(
                absl::StrCat("peer_name '", name, "' is not a valid host name, IP or URI"));
        }
    }
    SSL_CTX_set_verify(c, mode, internal::on_verify);
    return ctx;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::create(const TlsConfig& config) {
    // Built from the context's own copy: OpenSSL callbacks keep pointers into it (the ALPN).
    auto context = std::make_unique<TlsContext>(Key{}, config, nullptr);
    absl::StatusOr<CtxPtr> ctx = build(context->config_);
    if (!ctx.ok()) {
        return ctx.status();
    }
    context->ctx_ = ctx->release();
    return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

absl::Status TlsContext::reload() {
    absl::StatusOr<CtxPtr> fresh = build(config_);
    if (!fresh.ok()) {
        return fresh.status();
    }
    // SSL objects reference-count their SSL_CTX, so handshakes in flight keep the old one alive.
    SSL_CTX_free(ctx_);
    ctx_ = fresh->release();
    ++generation_;
    return absl::OkStatus();
}

}  // namespace ferry::tls
