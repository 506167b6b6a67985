#include "ferry/tls/key_schedule.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry::tls {
namespace {

std::vector<std::byte> hex(std::string_view text) {
    std::vector<std::byte> out;
    std::string digits;
    for (char c : text) {
        if (c != ' ') {
            digits.push_back(c);
        }
    }
    for (size_t i = 0; i + 1 < digits.size(); i += 2) {
        out.push_back(static_cast<std::byte>(std::stoi(digits.substr(i, 2), nullptr, 16)));
    }
    return out;
}

std::vector<std::byte> bytes(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

// RFC 8448 §3 (simple 1-RTT handshake, TLS_AES_128_GCM_SHA256): traffic secret -> key, iv.
struct Rfc8448Vector {
    const char* what;
    const char* secret;
    const char* key;
    const char* iv;
};

constexpr Rfc8448Vector kRfc8448[] = {
    {"server handshake",
     "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad "
     "38",
     "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc", "5d 31 3e b2 67 12 76 ee 13 00 0b 30"},
    {"client handshake",
     "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a "
     "21",
     "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01", "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f"},
    {"server application",
     "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 "
     "43",
     "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56", "cf 78 2b 88 dd 83 54 9a ad f1 e9 84"},
};

TEST(KeySchedule, DerivesRfc8448TrafficKeys) {
    for (const Rfc8448Vector& v : kRfc8448) {
        SCOPED_TRACE(v.what);
        DirectionKeys keys;
        keys.seq = 7;
        ASSERT_TRUE(derive_key_iv(Cipher::Aes128Gcm, hex(v.secret), &keys));
        EXPECT_EQ(bytes(keys.key_bytes()), hex(v.key));
        EXPECT_EQ(bytes(keys.iv), hex(v.iv));
        EXPECT_EQ(bytes(keys.secret_bytes()), hex(v.secret));
        EXPECT_EQ(keys.seq, 0u);
    }
}

TEST(KeySchedule, ExpandLabelCarriesTheOutputLength) {
    const auto secret = hex(kRfc8448[0].secret);
    std::vector<std::byte> key(16);
    ASSERT_TRUE(hkdf_expand_label(Cipher::Aes128Gcm, secret, "key", {}, key));
    EXPECT_EQ(key, hex(kRfc8448[0].key));
    // The requested length is part of the label: a longer output is not a prefix extension.
    std::vector<std::byte> longer(32);
    ASSERT_TRUE(hkdf_expand_label(Cipher::Aes128Gcm, secret, "key", {}, longer));
    EXPECT_NE(std::vector<std::byte>(longer.begin(), longer.begin() + 16), key);
}

TEST(KeySchedule, NextTrafficSecretRatchetsWithTheSuiteHash) {
    const auto secret = hex(kRfc8448[2].secret);
    std::vector<std::byte> next(32);
    ASSERT_TRUE(next_traffic_secret(Cipher::Aes128Gcm, secret, next));
    EXPECT_NE(next, secret);
    std::vector<std::byte> expanded(32);
    ASSERT_TRUE(hkdf_expand_label(Cipher::Aes128Gcm, secret, "traffic upd", {}, expanded));
    EXPECT_EQ(next, expanded);

    std::vector<std::byte> sha384_secret(48, std::byte{0x42});
    std::vector<std::byte> sha384_next(48);
    ASSERT_TRUE(next_traffic_secret(Cipher::Aes256Gcm, sha384_secret, sha384_next));
    EXPECT_NE(sha384_next, sha384_secret);
    EXPECT_FALSE(next_traffic_secret(Cipher::Aes256Gcm, secret, sha384_next)) << "wrong length";
}

TEST(KeySchedule, NextDirectionKeysResetsTheSequence) {
    DirectionKeys current;
    ASSERT_TRUE(derive_key_iv(Cipher::Chacha20Poly1305, hex(kRfc8448[2].secret), &current));
    current.seq = 99;
    DirectionKeys next;
    ASSERT_TRUE(next_direction_keys(current, &next));
    EXPECT_EQ(next.seq, 0u);
    EXPECT_EQ(next.cipher, Cipher::Chacha20Poly1305);
    EXPECT_EQ(next.key_bytes().size(), 32u);
    EXPECT_NE(bytes(next.key_bytes()), bytes(current.key_bytes()));
    // Derivation is a function of the secret alone: in-place ratcheting gives the same keys.
    ASSERT_TRUE(next_direction_keys(current, &current));
    EXPECT_EQ(bytes(current.key_bytes()), bytes(next.key_bytes()));
    EXPECT_EQ(bytes(current.iv), bytes(next.iv));
}

TEST(KeySchedule, RejectsSecretsOfTheWrongLength) {
    DirectionKeys keys;
    EXPECT_FALSE(derive_key_iv(Cipher::Aes256Gcm, hex(kRfc8448[0].secret), &keys));
    EXPECT_FALSE(derive_key_iv(Cipher::Aes128Gcm, {}, &keys));
}

TEST(KeySchedule, MapsSuiteIdsAndNames) {
    Cipher c{};
    ASSERT_TRUE(cipher_from_suite_id(0x1302, &c));
    EXPECT_EQ(c, Cipher::Aes256Gcm);
    EXPECT_STREQ(cipher_name(c), "TLS_AES_256_GCM_SHA384");
    EXPECT_EQ(secret_len(c), 48u);
    EXPECT_EQ(key_len(Cipher::Aes128Gcm), 16u);
    EXPECT_FALSE(cipher_from_suite_id(0x1304, &c)) << "TLS_AES_128_CCM_SHA256 is not offered";
}

}  // namespace
}  // namespace ferry::tls
