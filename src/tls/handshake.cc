#include "ferry/tls/handshake.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ferry/base/check.h"
#include "ferry/tls/alert.h"
#include "ferry/tls/tls_context.h"
#include "internal/ssl_hooks.h"

namespace ferry::tls {
namespace {

constexpr uint8_t kRecordAlert = 21;
constexpr uint8_t kRecordHandshake = 22;
constexpr size_t kRecordHeaderLen = 5;
constexpr size_t kMaxPlaintextRecord = 16384;  // RFC 8446 §5.1

Handshake* handshake_of(const SSL* ssl) noexcept {
    return ssl == nullptr ? nullptr : static_cast<Handshake*>(SSL_get_app_data(ssl));
}

// The identities a certificate proves: its DNS and URI subject alternative names (URI for SPIFFE
// IDs), in order. Never its subject CN: RFC 9525 §6.3 retires the CN as an identity, and a
// certificate whose SANs name someone else must not pass on its CN (CN-ID matching would let a
// CA-signed certificate for "evil" with CN "ferry-initiator" in).
std::vector<std::string> certificate_names(X509* cert) {
    std::vector<std::string> names;
    auto* sans =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (sans != nullptr) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
            const ASN1_STRING* s = gn->type == GEN_DNS   ? gn->d.dNSName
                                   : gn->type == GEN_URI ? gn->d.uniformResourceIdentifier
                                                         : nullptr;
            if (s != nullptr) {
                names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                   static_cast<size_t>(ASN1_STRING_length(s)));
            }
        }
        GENERAL_NAMES_free(sans);
    }
    return names;
}

// The subject CN, only to name a certificate without SANs in logs and errors.
std::string common_name(X509* cert) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    const int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx < 0) {
        return {};
    }
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
}

// A configured identity matches a certificate name: DNS names case-insensitively (RFC 4343),
// URIs (SPIFFE IDs) exactly.
bool identity_matches(std::string_view configured, std::string_view name) {
    if (configured.find("://") != std::string_view::npos) {
        return configured == name;
    }
    return name.find("://") == std::string_view::npos &&
           absl::EqualsIgnoreCase(absl::string_view(configured.data(), configured.size()),
                                  absl::string_view(name.data(), name.size()));
}

const char* version_name(int version) noexcept {
    switch (version) {
        case SSL3_VERSION:
            return "SSL 3.0";
        case TLS1_VERSION:
            return "TLS 1.0";
        case TLS1_1_VERSION:
            return "TLS 1.1";
        case TLS1_2_VERSION:
            return "TLS 1.2";
        case TLS1_3_VERSION:
            return "TLS 1.3";
        default:
            return "an unknown version";
    }
}

bool is_ip_literal(const std::string& name) noexcept {
    unsigned char buf[16];
    return inet_pton(AF_INET, name.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

}  // namespace

namespace internal {

struct HandshakeAccess {
    static void traffic_secret(Handshake& hs, bool client, std::string_view hex) noexcept {
        if (hex.size() % 2 != 0 || hex.size() / 2 > kMaxSecretLen) {
            return;
        }
        auto& dst = client ? hs.client_secret_ : hs.server_secret_;
        for (size_t i = 0; i < hex.size() / 2; ++i) {
            const int hi = hex_value(hex[2 * i]);
            const int lo = hex_value(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                return;
            }
            dst[i] = static_cast<std::byte>(hi * 16 + lo);
        }
        hs.secret_len_ = hex.size() / 2;
        (client ? hs.have_client_secret_ : hs.have_server_secret_) = true;
    }

    static void offered_version(Handshake& hs, int version) noexcept {
        hs.offered_version_ = version;
    }

    static std::vector<std::string>& peer_names(Handshake& hs) noexcept { return hs.peer_names_; }

    static std::string& peer_common_name(Handshake& hs) noexcept { return hs.peer_cn_; }

    // Server: the client must carry an allowed identity among its SANs. Client: a URI peer name
    // (a SPIFFE ID) must be one of the server's URI SANs (DNS and IP names are OpenSSL's check).
    static bool peer_allowed(Handshake& hs) {
        const TlsConfig& config = hs.ctx_.config();
        const std::vector<std::string>& names = hs.peer_names_;
        auto listed = [&](const std::string& wanted) {
            return std::any_of(names.begin(), names.end(), [&](const std::string& name) {
                return identity_matches(wanted, name);
            });
        };
        if (hs.is_server_) {
            if (config.allowed_peer_names.empty() ||
                std::any_of(config.allowed_peer_names.begin(), config.allowed_peer_names.end(),
                            listed)) {
                return true;
            }
            hs.name_rejection_ = absl::StrCat(
                "peer identity not allowed: certificate names [", absl::StrJoin(names, ", "),
                "] are not in allowed_peer_names", names.empty() ? described_cn(hs) : "");
            return false;
        }
        if (config.peer_name.find("://") == std::string::npos || listed(config.peer_name)) {
            return true;
        }
        hs.name_rejection_ =
            absl::StrCat("peer name mismatch: expected ", config.peer_name, ", certificate names [",
                         absl::StrJoin(names, ", "), "]", names.empty() ? described_cn(hs) : "");
        return false;
    }

    static std::string described_cn(const Handshake& hs) {
        return hs.peer_cn_.empty() ? std::string(" (no subject alternative names)")
                                   : absl::StrCat(" (no subject alternative names; its CN '",
                                                  hs.peer_cn_, "' is not an identity)");
    }
};

void on_keylog_line(const SSL* ssl, const char* line) {
    Handshake* hs = handshake_of(ssl);
    if (hs == nullptr) {
        return;
    }
    // "<LABEL> <client_random hex> <secret hex>" (NSS key log format).
    const std::string_view text(line);
    const size_t first = text.find(' ');
    const size_t last = text.rfind(' ');
    if (first == std::string_view::npos || last == first) {
        return;
    }
    const std::string_view label = text.substr(0, first);
    const std::string_view secret = text.substr(last + 1);
    if (label == "CLIENT_TRAFFIC_SECRET_0") {
        HandshakeAccess::traffic_secret(*hs, true, secret);
    } else if (label == "SERVER_TRAFFIC_SECRET_0") {
        HandshakeAccess::traffic_secret(*hs, false, secret);
    }
}

int on_client_hello(SSL* ssl, int* /*alert*/, void* /*arg*/) {
    Handshake* hs = handshake_of(ssl);
    if (hs == nullptr) {
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    int best = static_cast<int>(SSL_client_hello_get0_legacy_version(ssl));
    const unsigned char* ext = nullptr;
    size_t len = 0;
    // RFC 8446 §4.2.1: a TLS 1.3 client lists its versions here; legacy_version stays 0x0303.
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &ext, &len) == 1 &&
        len >= 1) {
        const size_t list_end = std::min(len, size_t{1} + ext[0]);
        for (size_t i = 1; i + 1 < list_end; i += 2) {
            const int v = ext[i] << 8 | ext[i + 1];
            if (v >= SSL3_VERSION && v <= TLS1_3_VERSION) {  // skips GREASE and drafts
                best = std::max(best, v);
            }
        }
    }
    HandshakeAccess::offered_version(*hs, best);
    return SSL_CLIENT_HELLO_SUCCESS;
}

int on_verify(int preverify_ok, X509_STORE_CTX* store) {
    if (X509_STORE_CTX_get_error_depth(store) != 0) {
        return preverify_ok;
    }
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    Handshake* hs = handshake_of(ssl);
    if (hs == nullptr) {
        return preverify_ok;
    }
    // Kept even when verification fails: OpenSSL then drops the certificate, and the names are
    // what the failure reason and the logs need.
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    HandshakeAccess::peer_names(*hs) = certificate_names(cert);
    HandshakeAccess::peer_common_name(*hs) = common_name(cert);
    if (preverify_ok != 1 || HandshakeAccess::peer_allowed(*hs)) {
        return preverify_ok;
    }
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

std::string drain_openssl_errors(const char* fallback) {
    std::string out;
    unsigned long e = 0;
    while ((e = ERR_get_error()) != 0) {
        if (ERR_GET_REASON(e) == ERR_R_SYS_LIB) {
            continue;  // "system lib" only points back at the system error reported with it
        }
        std::string one;
        if (ERR_SYSTEM_ERROR(e)) {
            one = std::strerror(ERR_GET_REASON(e));  // OpenSSL 3 keeps errno as the reason
        } else {
            const char* reason = ERR_reason_error_string(e);
            const char* lib = ERR_lib_error_string(e);
            one = reason != nullptr ? reason : absl::StrFormat("error %#lx", e);
            if (lib != nullptr) {
                absl::StrAppend(&one, " (", lib, ")");
            }
        }
        if (!absl::StrContains(out, one)) {
            absl::StrAppend(&out, out.empty() ? "" : "; ", one);
        }
    }
    return out.empty() ? std::string(fallback) : out;
}

}  // namespace internal

Handshake::Handshake(const TlsContext& ctx) : ctx_(ctx), is_server_(ctx.config().is_server) {
    // Each of these fails only when out of memory, which is fatal (STYLE: OOM).
    ssl_ = SSL_new(ctx.ssl_ctx());
    FERRY_CHECK(ssl_ != nullptr);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    FERRY_CHECK(in_ != nullptr && out_ != nullptr);
    // An empty read BIO means "wait for more", not end of stream.
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_app_data(ssl_, this);
    if (is_server_) {
        SSL_set_accept_state(ssl_);
    } else {
        SSL_set_connect_state(ssl_);
        const std::string& name = ctx.config().peer_name;
        // RFC 6066 §3: SNI carries DNS names only (not an IP, not a URI such as a SPIFFE ID).
        if (!is_ip_literal(name) && name.find("://") == std::string::npos) {
            SSL_set_tlsext_host_name(ssl_, name.c_str());
        }
    }
}

Handshake::~Handshake() {
    SSL_free(ssl_);  // frees both BIOs
    secure_wipe(client_secret_.data(), client_secret_.size());
    secure_wipe(server_secret_.data(), server_secret_.size());
}

bool Handshake::check_first_header(std::span<const std::byte> data) noexcept {
    const size_t fresh = std::min(data.size(), kRecordHeaderLen - header_seen_);
    std::memcpy(header_.data() + header_seen_, data.data(), fresh);
    header_seen_ = static_cast<uint8_t>(header_seen_ + fresh);
    const auto b = [&](size_t i) { return static_cast<uint8_t>(header_[i]); };

    // A server only ever starts with a ClientHello; a client may also get an alert back.
    const bool type_ok = b(0) == kRecordHandshake || (!is_server_ && b(0) == kRecordAlert);
    if (!type_ok) {
        // Show what arrived when it is text: the usual culprit is HTTP sent to the TLS port.
        std::string sample;
        bool printable = true;
        for (size_t i = 0; i < header_seen_ + (data.size() - fresh) && sample.size() < 16; ++i) {
            const auto c = static_cast<unsigned char>(
                i < header_seen_ ? b(i) : static_cast<uint8_t>(data[fresh + i - header_seen_]));
            if (c == '\r' || c == '\n') {
                break;
            }
            if (c < 0x20 || c > 0x7e) {
                printable = false;
                break;
            }
            sample.push_back(static_cast<char>(c));
        }
        if (printable) {
            fail(absl::StrCat("not TLS: first bytes look like HTTP/plaintext (\"", sample, "\")"));
        } else {
            fail(absl::StrFormat("not TLS: first byte 0x%02x is not a TLS handshake record", b(0)));
        }
        return false;
    }
    if (header_seen_ >= 2 && b(1) != 0x03) {
        fail(absl::StrFormat("not TLS: record version 0x%02x%02x", b(1),
                             header_seen_ >= 3 ? b(2) : 0));
        return false;
    }
    if (header_seen_ == kRecordHeaderLen) {
        const size_t len = size_t{b(3)} << 8 | b(4);
        if (len == 0 || len > kMaxPlaintextRecord) {
            fail(absl::StrFormat("not TLS: first record length %u", len));
            return false;
        }
        first_record_size_ = kRecordHeaderLen + len;
    }
    return true;
}

void Handshake::feed(std::span<const std::byte> from_network) noexcept {
    if (state_ == HandshakeStep::Failed || from_network.empty()) {
        return;
    }
    if (header_seen_ < kRecordHeaderLen && !check_first_header(from_network)) {
        return;
    }
    fed_ += from_network.size();
    while (!from_network.empty()) {
        const int chunk = static_cast<int>(std::min<size_t>(from_network.size(), INT_MAX));
        const int n = BIO_write(in_, from_network.data(), chunk);
        FERRY_CHECK(n > 0);  // a memory BIO only fails when out of memory
        from_network = from_network.subspan(static_cast<size_t>(n));
    }
}

HandshakeStep Handshake::step() noexcept {
    if (state_ != HandshakeStep::WantIo) {
        return state_;
    }
    if (is_server_ && !engaged_) {
        // OpenSSL sets up its handshake state and record buffers (tens of KiB) at its first
        // read: a server lets it start only once the whole first record is here, so a peer that
        // connects and sends nothing, or part of a record, costs a few bytes of memory BIO.
        if (first_record_size_ == 0 || fed_ < first_record_size_) {
            return state_;
        }
        engaged_ = true;
    }
    ERR_clear_error();
    const int rc = SSL_do_handshake(ssl_);
    if (rc == 1) {
        if (finish()) {
            state_ = HandshakeStep::Done;
        }
        return state_;
    }
    const int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ) {
        return state_;
    }
    fail(describe_failure(err));
    return state_;
}

bool Handshake::finish() noexcept {
    const SSL_CIPHER* suite = SSL_get_current_cipher(ssl_);
    Cipher cipher{};
    if (suite == nullptr ||
        !cipher_from_suite_id(static_cast<uint16_t>(SSL_CIPHER_get_protocol_id(suite)), &cipher)) {
        fail(absl::StrCat("negotiated unsupported suite ",
                          suite != nullptr ? SSL_CIPHER_get_name(suite) : "(none)"));
        return false;
    }
    if (!have_client_secret_ || !have_server_secret_ || secret_len_ != secret_len(cipher)) {
        fail("internal: traffic secrets were not captured from OpenSSL");
        return false;
    }
    const std::span<const std::byte> client{client_secret_.data(), secret_len_};
    const std::span<const std::byte> server{server_secret_.data(), secret_len_};
    keys_.cipher = cipher;
    if (!derive_key_iv(cipher, is_server_ ? server : client, &keys_.tx) ||
        !derive_key_iv(cipher, is_server_ ? client : server, &keys_.rx)) {
        fail(
            absl::StrCat("deriving traffic keys: ", internal::drain_openssl_errors("HKDF failed")));
        return false;
    }
    secure_wipe(client_secret_.data(), client_secret_.size());
    secure_wipe(server_secret_.data(), server_secret_.size());

    // For logs: the first SAN; the CN only stands in for a certificate that has none.
    peer_identity_ = !peer_names_.empty() ? peer_names_.front() : peer_cn_;
    return true;
}

void Handshake::fail(std::string reason) noexcept {
    failure_ = std::move(reason);
    state_ = HandshakeStep::Failed;
    ERR_clear_error();
}

std::string Handshake::describe_failure(int ssl_error) noexcept {
    if (ssl_error == SSL_ERROR_ZERO_RETURN) {
        return "peer closed the connection during the handshake (close_notify)";
    }
    if (ssl_error != SSL_ERROR_SSL) {
        return absl::StrCat("TLS handshake failed: ",
                            internal::drain_openssl_errors("unexpected end of input"));
    }
    const unsigned long e = ERR_peek_error();
    const int reason = ERR_GET_REASON(e);
    if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
        if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            if (!name_rejection_.empty()) {
                return name_rejection_;
            }
            const long verify = SSL_get_verify_result(ssl_);
            if (verify == X509_V_ERR_HOSTNAME_MISMATCH ||
                verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
                return absl::StrCat(
                    "peer name mismatch: expected ", ctx_.config().peer_name,
                    ", certificate names [", absl::StrJoin(peer_names_, ", "), "]",
                    peer_names_.empty() ? internal::HandshakeAccess::described_cn(*this) : "");
            }
            return absl::StrCat("peer certificate verify failed: ",
                                X509_verify_cert_error_string(verify));
        }
        if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
            return "no client certificate";
        }
        if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_UNSUPPORTED_SSL_VERSION ||
            reason == SSL_R_WRONG_SSL_VERSION) {
            if (is_server_ && offered_version_ != 0) {
                return absl::StrCat("protocol version: peer offered ",
                                    version_name(offered_version_), ", ferry requires TLS 1.3");
            }
            return "protocol version: peer does not speak TLS 1.3";
        }
        // OpenSSL reports a received alert as reason SSL_AD_REASON_OFFSET + description.
        if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
            const auto alert = static_cast<uint8_t>(reason - SSL_AD_REASON_OFFSET);
            if (alert == static_cast<uint8_t>(AlertDescription::ProtocolVersion)) {
                return "protocol version: peer sent alert protocol_version";
            }
            return peer_alert_text(alert);
        }
    }
    return absl::StrCat("TLS handshake failed: ", internal::drain_openssl_errors("unknown error"));
}

size_t Handshake::pending_output() const noexcept { return BIO_ctrl_pending(out_); }

size_t Handshake::take_output(std::span<std::byte> out) noexcept {
    const int want = static_cast<int>(std::min<size_t>({out.size(), pending_output(), INT_MAX}));
    if (want <= 0) {
        return 0;
    }
    const int n = BIO_read(out_, out.data(), want);
    return n > 0 ? static_cast<size_t>(n) : 0;
}

std::span<const std::byte> Handshake::leftover_input() const noexcept {
    char* data = nullptr;
    const long n = BIO_get_mem_data(in_, &data);
    if (n <= 0 || data == nullptr) {
        return {};
    }
    return {reinterpret_cast<const std::byte*>(data), static_cast<size_t>(n)};
}

}  // namespace ferry::tls
