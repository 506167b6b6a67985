// One TLS 1.3 handshake driven over memory BIOs: the caller moves the bytes (io_uring recv/send),
// this class only turns bytes in into bytes out and, at the end, into traffic keys for the record
// layer or kTLS. It makes no socket calls and so can be fuzzed alone.
#pragma once

#include <openssl/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ferry/tls/key_schedule.h"

namespace ferry::tls {

class TlsContext;
namespace internal {
struct HandshakeAccess;
}

enum class HandshakeStep : uint8_t {
    // Send everything pending_output() holds, then feed() what the peer sends and step() again.
    WantIo,
    // Keys are ready. pending_output() may still hold this end's last flight (the client's
    // Finished): send it before any record protected with keys().
    Done,
    // failure_reason() says why; pending_output() may hold an alert worth sending before close.
    Failed,
};

// Driving loop: feed(received) -> step() -> send take_output() -> repeat until Done or Failed.
// Once Done, copy keys(), hand leftover_input() to the record layer and destroy the Handshake:
// the OpenSSL state it keeps (tens of KiB) is not needed for the connection's life.
// feed() copies into OpenSSL's read BIO (the handshake is a few KiB once per connection; the data
// path after it is zero-copy). Not copyable or movable: OpenSSL callbacks hold its address.
// Shard-local; every call is synchronous and no callback reaches the caller.
class Handshake final {
  public:
    // Starts a client or server handshake (TlsConfig::is_server) on ctx's newest SSL_CTX. `ctx`
    // must outlive this object. A client has its ClientHello in pending_output() after step().
    explicit Handshake(const TlsContext& ctx);
    ~Handshake();
    Handshake(const Handshake&) = delete;
    Handshake& operator=(const Handshake&) = delete;

    // Bytes received from the peer. Before OpenSSL sees them, the first record header is checked
    // so that plaintext (an HTTP request, a port scanner) fails at once with a clear reason.
    // Ignored after Failed. After Done, fed bytes only extend leftover_input().
    void feed(std::span<const std::byte> from_network) noexcept;

    // Advances the handshake as far as the input allows. Idempotent once Done or Failed.
    [[nodiscard]] HandshakeStep step() noexcept;

    [[nodiscard]] size_t pending_output() const noexcept;
    // Moves up to out.size() pending bytes into out; returns how many.
    [[nodiscard]] size_t take_output(std::span<std::byte> out) noexcept;

    [[nodiscard]] bool is_server() const noexcept { return is_server_; }

    // Human-readable cause once Failed, e.g. "peer certificate verify failed: certificate has
    // expired", "no client certificate", "peer name mismatch: expected ferry-terminator".
    [[nodiscard]] const std::string& failure_reason() const noexcept { return failure_; }

    // After Done: the negotiated suite and both directions' application traffic secrets, keys,
    // IVs and starting sequence numbers (0: no record was sent or received under them yet).
    [[nodiscard]] const TrafficKeys& keys() const noexcept { return keys_; }

    // After Done: bytes fed that follow the handshake (application records that arrived with
    // the peer's last flight). They belong to the record layer, which must open them before
    // anything received later. Borrowed: valid until the next feed() or destruction.
    [[nodiscard]] std::span<const std::byte> leftover_input() const noexcept;

    // After Done: who the peer is, for logs ("ferry-initiator": its first DNS or URI SAN; the
    // subject CN only for a certificate without SANs, which no identity check accepts).
    [[nodiscard]] const std::string& peer_identity() const noexcept { return peer_identity_; }

  private:
    friend struct internal::HandshakeAccess;  // the OpenSSL callbacks

    [[nodiscard]] bool check_first_header(std::span<const std::byte> data) noexcept;
    void fail(std::string reason) noexcept;
    [[nodiscard]] std::string describe_failure(int ssl_error) noexcept;
    [[nodiscard]] bool finish() noexcept;

    const TlsContext& ctx_;
    SSL* ssl_ = nullptr;
    BIO* in_ = nullptr;   // read BIO: bytes from the peer; owned by ssl_
    BIO* out_ = nullptr;  // write BIO: bytes for the peer; owned by ssl_
    bool is_server_ = false;
    HandshakeStep state_ = HandshakeStep::WantIo;
    uint8_t header_seen_ = 0;       // bytes of the peer's first record header checked so far
    size_t first_record_size_ = 0;  // server: header + length of the first record, once known
    size_t fed_ = 0;                // bytes fed so far
    bool engaged_ = false;          // server: OpenSSL has been asked to read
    std::array<std::byte, 5> header_{};
    int offered_version_ = 0;  // server: highest version in the ClientHello
    bool have_client_secret_ = false;
    bool have_server_secret_ = false;
    std::array<std::byte, kMaxSecretLen> client_secret_{};
    std::array<std::byte, kMaxSecretLen> server_secret_{};
    size_t secret_len_ = 0;
    std::vector<std::string> peer_names_;  // the peer certificate's DNS and URI SANs
    std::string peer_cn_;                  // its subject CN: for logs only, never an identity
    std::string name_rejection_;           // server: set when allowed_peer_names refused it
    TrafficKeys keys_;
    std::string peer_identity_;
    std::string failure_;
};

}  // namespace ferry::tls
