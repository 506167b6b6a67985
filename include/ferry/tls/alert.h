// TLS alert descriptions (RFC 8446 §6) and their names, shared by the handshake's failure
// reasons and the record layer's error results.
#pragma once

#include <cstdint>

namespace ferry::tls {

enum class AlertDescription : uint8_t {
    CloseNotify = 0,
    UnexpectedMessage = 10,
    BadRecordMac = 20,
    RecordOverflow = 22,
    HandshakeFailure = 40,
    BadCertificate = 42,
    UnsupportedCertificate = 43,
    CertificateRevoked = 44,
    CertificateExpired = 45,
    CertificateUnknown = 46,
    IllegalParameter = 47,
    UnknownCa = 48,
    AccessDenied = 49,
    DecodeError = 50,
    DecryptError = 51,
    ProtocolVersion = 70,
    InsufficientSecurity = 71,
    InternalError = 80,
    InappropriateFallback = 86,
    UserCanceled = 90,
    MissingExtension = 109,
    UnsupportedExtension = 110,
    UnrecognizedName = 112,
    BadCertificateStatusResponse = 113,
    UnknownPskIdentity = 115,
    CertificateRequired = 116,
    NoApplicationProtocol = 120,
};

// RFC spelling, e.g. "certificate_expired"; "unknown_alert" for codes RFC 8446 does not list.
[[nodiscard]] const char* alert_name(uint8_t code) noexcept;

// Static text for error results, e.g. "peer sent alert certificate_expired".
[[nodiscard]] const char* peer_alert_text(uint8_t code) noexcept;

}  // namespace ferry::tls
