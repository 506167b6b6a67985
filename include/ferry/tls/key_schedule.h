// TLS 1.3 traffic keys and the part of the key schedule (RFC 8446 §7) that runs after the
// handshake: key/IV derivation from a traffic secret and the KeyUpdate secret ratchet. The
// handshake produces these keys; the record layer and kTLS consume them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace ferry::tls {

// The three TLS 1.3 AEAD suites ferry negotiates (TLS_AES_128_CCM_* are not offered).
enum class Cipher : uint8_t { Aes128Gcm, Aes256Gcm, Chacha20Poly1305 };

inline constexpr size_t kMaxSecretLen = 48;  // SHA-384
inline constexpr size_t kMaxKeyLen = 32;
inline constexpr size_t kIvLen = 12;  // RFC 8446 §5.3: iv_length is 12 for every suite
inline constexpr size_t kTagLen = 16;

// Hash output length of the suite's HKDF hash: 32 (SHA-256) or 48 (SHA-384).
[[nodiscard]] size_t secret_len(Cipher cipher) noexcept;
[[nodiscard]] size_t key_len(Cipher cipher) noexcept;
// IANA name, e.g. "TLS_AES_128_GCM_SHA256".
[[nodiscard]] const char* cipher_name(Cipher cipher) noexcept;
// Maps the IANA 16-bit suite id (0x1301..0x1303) to a Cipher; false for anything else.
[[nodiscard]] bool cipher_from_suite_id(uint16_t id, Cipher* out) noexcept;

// Overwrites secrets so they do not linger in freed memory (the compiler may not elide it).
void secure_wipe(void* p, size_t n) noexcept;

// Keys for one direction of one connection: the traffic secret (kept so the next generation can
// be derived on KeyUpdate), the AEAD key and IV derived from it, and the next record's sequence
// number. A value type; every copy wipes itself when destroyed.
struct DirectionKeys {
    Cipher cipher = Cipher::Aes128Gcm;
    std::array<std::byte, kMaxSecretLen> secret{};
    std::array<std::byte, kMaxKeyLen> key{};
    std::array<std::byte, kIvLen> iv{};
    uint64_t seq = 0;

    DirectionKeys() = default;
    DirectionKeys(const DirectionKeys&) = default;
    DirectionKeys& operator=(const DirectionKeys&) = default;
    ~DirectionKeys() {
        secure_wipe(secret.data(), secret.size());
        secure_wipe(key.data(), key.size());
    }

    [[nodiscard]] std::span<const std::byte> secret_bytes() const noexcept {
        return {secret.data(), secret_len(cipher)};
    }
    [[nodiscard]] std::span<const std::byte> key_bytes() const noexcept {
        return {key.data(), key_len(cipher)};
    }
};

// Both directions as seen from one end: tx is what this end sends, rx what it receives. The
// client's tx is the server's rx (client_application_traffic_secret_0) and vice versa.
struct TrafficKeys {
    Cipher cipher = Cipher::Aes128Gcm;
    DirectionKeys tx;
    DirectionKeys rx;
};

// HKDF-Expand-Label(secret, label, context, out.size()) of RFC 8446 §7.1 with the suite's hash.
// `label` is without the "tls13 " prefix. False only when libcrypto fails or the sizes are out of
// range (label > 249, context > 255, out > 255 * hash length).
[[nodiscard]] bool hkdf_expand_label(Cipher cipher, std::span<const std::byte> secret,
                                     std::string_view label, std::span<const std::byte> context,
                                     std::span<std::byte> out) noexcept;

// RFC 8446 §7.3: fills out->{cipher, secret, key, iv} from a traffic secret and sets seq to 0.
// False when secret has the wrong length for the suite or libcrypto fails.
[[nodiscard]] bool derive_key_iv(Cipher cipher, std::span<const std::byte> secret,
                                 DirectionKeys* out) noexcept;

// RFC 8446 §7.2: application_traffic_secret_N+1 =
// HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length).
// `out` must hold secret_len(cipher) bytes.
[[nodiscard]] bool next_traffic_secret(Cipher cipher, std::span<const std::byte> secret,
                                       std::span<std::byte> out) noexcept;

// The next generation of `current` (secret ratcheted, key and IV derived, seq reset to 0).
[[nodiscard]] bool next_direction_keys(const DirectionKeys& current, DirectionKeys* out) noexcept;

}  // namespace ferry::tls
