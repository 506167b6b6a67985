// libFuzzer target: RecordLayer::open on arbitrary bytes with fixed keys. It must never crash,
// whatever arrives, and never hand out a span outside the buffer it was given.
//
// Byte 0 chooses: bits 0-1 the suite (3 wraps to AES-128-GCM); bit 2 the mode.
//   mode 0: the rest is the received stream, opened record by record in place (a fuzzer rarely
//           forges a tag, so this explores framing and the paths before decryption);
//   mode 1: the rest is a list of inner plaintexts, each [len_hi len_lo bytes...], which the
//           harness encrypts as a well-formed record under the current key before opening it.
//           This reaches what comes after decryption: padding, content types, alerts and
//           KeyUpdate (the harness follows a KeyUpdate it sent, as a real peer would).
// The keys come from fixed secrets: the seed corpus was sealed with the same ones.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "ferry/tls/key_schedule.h"
#include "ferry/tls/record_layer.h"

namespace {

using ferry::tls::Cipher;
using ferry::tls::DirectionKeys;
using ferry::tls::OpenResult;
using ferry::tls::OpenStatus;
using ferry::tls::RecordLayer;
using ferry::tls::TrafficKeys;

TrafficKeys receiver_keys(Cipher cipher) {
    const std::vector<std::byte> from_peer(ferry::tls::secret_len(cipher), std::byte{0x5a});
    const std::vector<std::byte> to_peer(ferry::tls::secret_len(cipher), std::byte{0xa5});
    TrafficKeys keys;
    keys.cipher = cipher;
    if (!ferry::tls::derive_key_iv(cipher, to_peer, &keys.tx) ||
        !ferry::tls::derive_key_iv(cipher, from_peer, &keys.rx)) {
        std::abort();
    }
    return keys;
}

const EVP_CIPHER* evp(Cipher cipher) {
    switch (cipher) {
        case Cipher::Aes128Gcm:
            return EVP_aes_128_gcm();
        case Cipher::Aes256Gcm:
            return EVP_aes_256_gcm();
        case Cipher::Chacha20Poly1305:
            return EVP_chacha20_poly1305();
    }
    return nullptr;
}

// The peer's side, written independently of RecordLayer: header || AEAD(inner) || tag.
std::vector<std::byte> encrypt(DirectionKeys& keys, std::span<const uint8_t> inner) {
    const size_t body = inner.size() + ferry::tls::kTagLen;
    std::vector<std::byte> record(ferry::tls::kRecordHeaderLen + body);
    auto* out = reinterpret_cast<unsigned char*>(record.data());
    out[0] = 23;
    out[1] = 3;
    out[2] = 3;
    out[3] = static_cast<unsigned char>(body >> 8);
    out[4] = static_cast<unsigned char>(body);
    unsigned char nonce[12];
    std::memcpy(nonce, keys.iv.data(), sizeof(nonce));
    for (int i = 0; i < 8; ++i) {
        nonce[11 - i] ^= static_cast<unsigned char>(keys.seq >> (8 * i));
    }
    ++keys.seq;
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    bool ok =
        EVP_EncryptInit_ex(ctx, evp(keys.cipher), nullptr,
                           reinterpret_cast<const unsigned char*>(keys.key.data()), nonce) == 1 &&
        EVP_EncryptUpdate(ctx, nullptr, &n, out, 5) == 1 &&
        EVP_EncryptUpdate(ctx, out + 5, &n, inner.data(), static_cast<int>(inner.size())) == 1 &&
        EVP_EncryptFinal_ex(ctx, out + 5 + n, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + inner.size()) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        std::abort();
    }
    return record;
}

void check_result(const OpenResult& r, std::span<const std::byte> buf) {
    const bool inside =
        r.plaintext.empty() || (r.plaintext.data() >= buf.data() &&
                                r.plaintext.data() + r.plaintext.size() <= buf.data() + buf.size());
    if (r.consumed > buf.size() || !inside || (r.status == OpenStatus::Error && !r.error)) {
        std::abort();
    }
}

void open_stream(RecordLayer& rl, std::span<std::byte> stream) {
    while (true) {
        const OpenResult r = rl.open(stream);
        check_result(r, stream);
        if (r.status == OpenStatus::NeedMore) {
            if (r.needed <= stream.size()) {
                std::abort();
            }
            return;
        }
        if (r.status == OpenStatus::Error || r.status == OpenStatus::Eof) {
            return;
        }
        stream = stream.subspan(r.consumed);
    }
}

void open_synthesized(RecordLayer& rl, Cipher cipher, std::span<const uint8_t> input) {
    DirectionKeys peer = receiver_keys(cipher).rx;
    while (input.size() >= 2) {
        const size_t len = std::min<size_t>(size_t{input[0]} << 8 | input[1], input.size() - 2);
        const std::span<const uint8_t> inner = input.subspan(2, len);
        input = input.subspan(2 + len);
        if (inner.size() > ferry::tls::kMaxRecordPlaintext + 256 - ferry::tls::kTagLen) {
            return;
        }
        std::vector<std::byte> record = encrypt(peer, inner);
        const OpenResult r = rl.open(record);
        check_result(r, record);
        if (r.status == OpenStatus::NeedMore || r.status == OpenStatus::Error ||
            r.status == OpenStatus::Eof) {
            return;
        }
        if (r.status == OpenStatus::KeyUpdate && !ferry::tls::next_direction_keys(peer, &peer)) {
            std::abort();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const auto cipher = static_cast<Cipher>((data[0] & 3) == 3 ? 0 : data[0] & 3);
    RecordLayer rl(receiver_keys(cipher));
    if ((data[0] & 4) == 0) {
        // open() decrypts in place, so it gets a private copy.
        std::vector<std::byte> stream(reinterpret_cast<const std::byte*>(data) + 1,
                                      reinterpret_cast<const std::byte*>(data) + size);
        open_stream(rl, stream);
    } else {
        open_synthesized(rl, cipher, std::span(data + 1, size - 1));
    }
    return 0;
}
