#include "ferry/tls/key_schedule.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstring>

namespace ferry::tls {
namespace {

constexpr std::string_view kLabelPrefix = "tls13 ";

const char* digest_name(Cipher cipher) noexcept {
    return cipher == Cipher::Aes256Gcm ? "SHA384" : "SHA256";
}

// Fetched once: an implicit fetch by name on every derivation walks the provider store.
EVP_KDF* hkdf() noexcept {
    static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    return kdf;
}

}  // namespace

size_t secret_len(Cipher cipher) noexcept { return cipher == Cipher::Aes256Gcm ? 48 : 32; }

size_t key_len(Cipher cipher) noexcept { return cipher == Cipher::Aes128Gcm ? 16 : 32; }

const char* cipher_name(Cipher cipher) noexcept {
    switch (cipher) {
        case Cipher::Aes128Gcm:
            return "TLS_AES_128_GCM_SHA256";
        case Cipher::Aes256Gcm:
            return "TLS_AES_256_GCM_SHA384";
        case Cipher::Chacha20Poly1305:
            return "TLS_CHACHA20_POLY1305_SHA256";
    }
    return "unknown";
}

bool cipher_from_suite_id(uint16_t id, Cipher* out) noexcept {
    switch (id) {
        case 0x1301:
            *out = Cipher::Aes128Gcm;
            return true;
        case 0x1302:
            *out = Cipher::Aes256Gcm;
            return true;
        case 0x1303:
            *out = Cipher::Chacha20Poly1305;
            return true;
        default:
            return false;
    }
}

void secure_wipe(void* p, size_t n) noexcept { OPENSSL_cleanse(p, n); }

bool hkdf_expand_label(Cipher cipher, std::span<const std::byte> secret, std::string_view label,
                       std::span<const std::byte> context, std::span<std::byte> out) noexcept {
    // RFC 8446 §7.1: struct { uint16 length; opaque label<7..255>; opaque context<0..255>; }
    const size_t label_len = kLabelPrefix.size() + label.size();
    if (label_len > 255 || context.size() > 255 || out.size() > 255 * secret_len(cipher) ||
        secret.empty()) {
        return false;
    }
    unsigned char info[2 + 1 + 255 + 1 + 255];
    size_t n = 0;
    info[n++] = static_cast<unsigned char>(out.size() >> 8);
    info[n++] = static_cast<unsigned char>(out.size());
    info[n++] = static_cast<unsigned char>(label_len);
    std::memcpy(info + n, kLabelPrefix.data(), kLabelPrefix.size());
    n += kLabelPrefix.size();
    std::memcpy(info + n, label.data(), label.size());
    n += label.size();
    info[n++] = static_cast<unsigned char>(context.size());
    if (!context.empty()) {
        std::memcpy(info + n, context.data(), context.size());
        n += context.size();
    }

    EVP_KDF* kdf = hkdf();
    if (kdf == nullptr) {
        return false;
    }
    EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(kdf);
    if (kctx == nullptr) {
        return false;
    }
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                         const_cast<char*>(digest_name(cipher)), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::byte*>(secret.data()),
                                          secret.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
        OSSL_PARAM_construct_end(),
    };
    const bool ok =
        EVP_KDF_derive(kctx, reinterpret_cast<unsigned char*>(out.data()), out.size(), params) == 1;
    EVP_KDF_CTX_free(kctx);
    return ok;
}

bool derive_key_iv(Cipher cipher, std::span<const std::byte> secret, DirectionKeys* out) noexcept {
    if (secret.size() != secret_len(cipher)) {
        return false;
    }
    out->cipher = cipher;
    std::memcpy(out->secret.data(), secret.data(), secret.size());
    out->seq = 0;
    // RFC 8446 §7.3: key = Expand-Label(secret, "key", "", key_length), iv likewise with "iv".
    const std::span<std::byte> key{out->key.data(), key_len(cipher)};
    return hkdf_expand_label(cipher, secret, "key", {}, key) &&
           hkdf_expand_label(cipher, secret, "iv", {}, out->iv);
}

bool next_traffic_secret(Cipher cipher, std::span<const std::byte> secret,
                         std::span<std::byte> out) noexcept {
    if (secret.size() != secret_len(cipher) || out.size() != secret.size()) {
        return false;
    }
    return hkdf_expand_label(cipher, secret, "traffic upd", {}, out);
}

bool next_direction_keys(const DirectionKeys& current, DirectionKeys* out) noexcept {
    std::array<std::byte, kMaxSecretLen> next{};
    const size_t len = secret_len(current.cipher);
    const bool ok =
        next_traffic_secret(current.cipher, current.secret_bytes(), {next.data(), len}) &&
        derive_key_iv(current.cipher, {next.data(), len}, out);
    secure_wipe(next.data(), next.size());
    return ok;
}

}  // namespace ferry::tls
