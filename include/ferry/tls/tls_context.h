// TLS 1.3 mutual-auth configuration for one end of the tunnel: certificate, key, trusted CA and
// the peer identities to accept. Every Handshake starts from the newest context of its shard.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ferry::tls {

inline constexpr const char* kDefaultCiphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

struct TlsConfig {
    bool is_server = false;
    std::string cert_file;  // PEM chain, leaf first
    std::string key_file;   // PEM private key of the leaf
    std::string ca_file;    // PEM CA(s) the peer's certificate must chain to
    // Client only, required: the server's identity — a DNS name (wildcard SANs honoured; also
    // sent as SNI), an IP address, or a URI such as a SPIFFE ID — matched against its subject
    // alternative names only, never its CN (RFC 9525).
    std::string peer_name;
    // Server only: client identities accepted, matched against the client certificate's DNS SANs
    // (case-insensitive) and URI SANs (exactly); never its CN. Empty accepts any certificate
    // from the CA.
    std::vector<std::string> allowed_peer_names;
    // Server only: false serves clients that carry no certificate (a wss:// listener's web
    // clients); no CA is needed then.
    bool verify_peer = true;
    // Server: the ALPN protocol chosen when the client offers it ("http/1.1"); a client that
    // offers others only goes on without ALPN. Client of a foreign_server: the one it offers.
    // Empty: no ALPN.
    std::string alpn;
    // Client only: the server is not a ferry peer (a grpcs:// upstream). No certificate of our
    // own is shown unless cert_file is set; the server's chains to ca_file or, when that is
    // empty, to the system's trust store; NewSessionTickets it sends anyway (RFC 8446 §4.6.1 lets
    // a server send them whatever the client wants) are dropped unread by the record layer.
    bool foreign_server = false;
    // TLS 1.3 suite names, colon separated, in preference order.
    std::string ciphersuites = kDefaultCiphersuites;
};

// Owns the OpenSSL SSL_CTX built from a TlsConfig: TLS 1.3 only, peer certificate required in both
// directions (unless a server is told otherwise), no session tickets and no session cache, so that
// after the handshake the only records other than application data are KeyUpdate and alerts.
//
// Shard-local: create(), reload() and Handshake construction run on the owning thread. Handshakes
// hold their own reference to the SSL_CTX they started with, so reload() never disturbs one in
// flight.
class TlsContext final {
    struct Key {
        explicit Key() = default;
    };

  public:
    // Loads and checks the files. Errors name the file and carry OpenSSL's reason, e.g.
    // "loading certificate chain /etc/ferry/tls.crt: no start line (PEM routines)".
    [[nodiscard]] static absl::StatusOr<std::unique_ptr<TlsContext>> create(
        const TlsConfig& config);

    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    // Re-reads certificate, key and CA into a fresh SSL_CTX (rotated certificates on disk). New
    // handshakes use it; on error the current context stays in use and the error is returned.
    [[nodiscard]] absl::Status reload();

    [[nodiscard]] const TlsConfig& config() const noexcept { return config_; }
    // The newest SSL_CTX, for Handshake: its callbacks expect every SSL made from it to belong
    // to a Handshake. Borrowed: valid until the next reload() or destruction.
    [[nodiscard]] SSL_CTX* ssl_ctx() const noexcept { return ctx_; }
    // Number of successful reloads, for logs and metrics.
    [[nodiscard]] uint64_t generation() const noexcept { return generation_; }

    // For create() only (the Key is private); takes ownership of ctx.
    TlsContext(Key, const TlsConfig& config, SSL_CTX* ctx) : config_(config), ctx_(ctx) {}

  private:
    TlsConfig config_;
    SSL_CTX* ctx_;
    uint64_t generation_ = 0;
};

}  // namespace ferry::tls
