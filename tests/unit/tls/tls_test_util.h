// Helpers for the tls tests: the test PKI from tools/gen-certs.sh, configs built on it, a byte
// shuttle between two handshakes, and raw OpenSSL endpoints over memory BIOs.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ferry/tls/handshake.h"
#include "ferry/tls/key_schedule.h"
#include "ferry/tls/tls_context.h"

namespace ferry::tls::testing {

using Bytes = std::vector<std::byte>;

// Directory holding the PKI of tools/gen-certs.sh, made once per process in a temp dir that a
// gtest environment deletes at the end. Aborts the process when the script fails.
const std::string& cert_dir();
std::string cert(const std::string& name);  // "initiator.crt" -> full path

// Terminator (server) and initiator (client) configs on the test CA.
TlsConfig server_config();
TlsConfig client_config();

std::unique_ptr<TlsContext> make_context(const TlsConfig& config);

Bytes to_bytes(std::string_view text);
std::string to_string(std::span<const std::byte> bytes);
Bytes drain(Handshake& hs);

// Steps both handshakes and moves their output across until neither makes progress.
void pump(Handshake& client, Handshake& server);

// A plain OpenSSL endpoint on memory BIOs, for peers ferry itself would never be (TLS 1.2 only,
// no client certificate) and for cross-checking the record layer against OpenSSL's.
class RawSsl final {
  public:
    explicit RawSsl(SSL_CTX* ctx);  // takes ownership of ctx
    ~RawSsl();
    RawSsl(const RawSsl&) = delete;
    RawSsl& operator=(const RawSsl&) = delete;

    SSL* ssl() const { return ssl_; }
    void feed(std::span<const std::byte> bytes);
    Bytes drain();
    // Traffic secrets captured by the keylog callback, by label.
    std::map<std::string, Bytes>& secrets() { return secrets_; }
    // Keys as this end sees them (tx = its own traffic secret).
    TrafficKeys keys(bool is_server) const;

  private:
    SSL_CTX* ctx_;
    SSL* ssl_;
    BIO* in_;
    BIO* out_;
    std::map<std::string, Bytes> secrets_;
};

// SSL_CTX for a raw endpoint: TLS 1.3 unless max_version says otherwise, trusting the test CA,
// tickets off, with or without a certificate ("" = none).
SSL_CTX* raw_ctx(bool is_server, const std::string& cert_name, int max_version = TLS1_3_VERSION,
                 const char* ciphersuites = kDefaultCiphersuites);

// Runs a raw handshake between two raw endpoints to completion; false on failure.
bool raw_handshake(RawSsl& client, RawSsl& server);

}  // namespace ferry::tls::testing
