#include "ferry/tls/alert.h"

namespace ferry::tls {
namespace {

struct AlertInfo {
    uint8_t code;
    const char* name;
    const char* text;
};

#define FERRY_ALERT(code, name) \
    { code, name, "peer sent alert " name }
constexpr AlertInfo kAlerts[] = {
    FERRY_ALERT(0, "close_notify"),
    FERRY_ALERT(10, "unexpected_message"),
    FERRY_ALERT(20, "bad_record_mac"),
    FERRY_ALERT(22, "record_overflow"),
    FERRY_ALERT(40, "handshake_failure"),
    FERRY_ALERT(42, "bad_certificate"),
    FERRY_ALERT(43, "unsupported_certificate"),
    FERRY_ALERT(44, "certificate_revoked"),
    FERRY_ALERT(45, "certificate_expired"),
    FERRY_ALERT(46, "certificate_unknown"),
    FERRY_ALERT(47, "illegal_parameter"),
    FERRY_ALERT(48, "unknown_ca"),
    FERRY_ALERT(49, "access_denied"),
    FERRY_ALERT(50, "decode_error"),
    FERRY_ALERT(51, "decrypt_error"),
    FERRY_ALERT(70, "protocol_version"),
    FERRY_ALERT(71, "insufficient_security"),
    FERRY_ALERT(80, "internal_error"),
    FERRY_ALERT(86, "inappropriate_fallback"),
    FERRY_ALERT(90, "user_canceled"),
    FERRY_ALERT(109, "missing_extension"),
    FERRY_ALERT(110, "unsupported_extension"),
    FERRY_ALERT(112, "unrecognized_name"),
    FERRY_ALERT(113, "bad_certificate_status_response"),
    FERRY_ALERT(115, "unknown_psk_identity"),
    FERRY_ALERT(116, "certificate_required"),
    FERRY_ALERT(120, "no_application_protocol"),
};
#undef FERRY_ALERT

constexpr AlertInfo kUnknown = {255, "unknown_alert", "peer sent alert unknown_alert"};

const AlertInfo& find(uint8_t code) noexcept {
    for (const AlertInfo& a : kAlerts) {
        if (a.code == code) {
            return a;
        }
    }
    return kUnknown;
}

}  // namespace

const char* alert_name(uint8_t code) noexcept { return find(code).name; }

const char* peer_alert_text(uint8_t code) noexcept { return find(code).text; }

}  // namespace ferry::tls
