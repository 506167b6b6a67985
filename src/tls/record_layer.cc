#include "ferry/tls/record_layer.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

#include "ferry/base/check.h"
#include "ferry/tls/alert.h"

namespace ferry::tls {
namespace {

constexpr uint8_t kChangeCipherSpec = 20;
constexpr uint8_t kAlert = 21;
constexpr uint8_t kHandshake = 22;
constexpr uint8_t kApplicationData = 23;
constexpr uint8_t kKeyUpdate = 24;  // RFC 8446 §4: HandshakeType key_update
constexpr uint8_t kNewSessionTicket = 4;
constexpr size_t kMaxInnerPlaintext = kMaxRecordPlaintext + 1;  // §5.4: content + type + padding
constexpr size_t kMaxCiphertext = kMaxRecordPlaintext + 256;    // §5.2

// Fetched once so keying a context skips the provider lookup an EVP_aes_*() getter implies.
const EVP_CIPHER* evp_cipher(Cipher cipher) noexcept {
    static EVP_CIPHER* const aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    static EVP_CIPHER* const aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    static EVP_CIPHER* const chacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
    switch (cipher) {
        case Cipher::Aes128Gcm:
            return aes128;
        case Cipher::Aes256Gcm:
            return aes256;
        case Cipher::Chacha20Poly1305:
            return chacha;
    }
    return nullptr;
}

auto* uc(std::byte* p) noexcept { return reinterpret_cast<unsigned char*>(p); }
auto* uc(const std::byte* p) noexcept { return reinterpret_cast<const unsigned char*>(p); }
int as_int(size_t n) noexcept { return static_cast<int>(n); }

// RFC 8446 §5.3: the 64-bit sequence number, big-endian and left-padded, XORed into the IV.
void make_nonce(const DirectionKeys& keys, unsigned char (&nonce)[kIvLen]) noexcept {
    std::memcpy(nonce, keys.iv.data(), kIvLen);
    for (size_t i = 0; i < 8; ++i) {
        nonce[kIvLen - 1 - i] ^= static_cast<unsigned char>(keys.seq >> (8 * i));
    }
}

// Keys `ctx` for one direction. Reuses the context: only the key schedule is replaced.
void set_key(EVP_CIPHER_CTX* ctx, const DirectionKeys& keys, int enc) noexcept {
    const EVP_CIPHER* cipher = evp_cipher(keys.cipher);
    FERRY_CHECK(cipher != nullptr);
    FERRY_CHECK(EVP_CipherInit_ex(ctx, cipher, nullptr, uc(keys.key.data()), nullptr, enc) == 1);
}

OpenResult error(const char* why, AlertDescription alert) noexcept {
    OpenResult r;
    r.status = OpenStatus::Error;
    r.error = why;
    r.alert = static_cast<uint8_t>(alert);
    return r;
}

}  // namespace

size_t record_size(std::span<const std::byte> buf) noexcept {
    if (buf.size() < kRecordHeaderLen) {
        return 0;
    }
    return kRecordHeaderLen +
           (size_t{static_cast<uint8_t>(buf[3])} << 8 | static_cast<uint8_t>(buf[4]));
}

size_t bytes_to_record_boundary(std::span<const std::byte> stream) noexcept {
    while (!stream.empty()) {
        const size_t size = record_size(stream);
        if (size == 0) {
            return kRecordHeaderLen - stream.size();
        }
        if (size > stream.size()) {
            return size - stream.size();
        }
        stream = stream.subspan(size);
    }
    return 0;
}

void RecordLayer::CtxDeleter::operator()(EVP_CIPHER_CTX* ctx) const noexcept {
    EVP_CIPHER_CTX_free(ctx);
}

RecordLayer::RecordLayer(const TrafficKeys& keys)
    : tx_(keys.tx), rx_(keys.rx), tx_ctx_(EVP_CIPHER_CTX_new()), rx_ctx_(EVP_CIPHER_CTX_new()) {
    FERRY_CHECK(tx_.cipher == keys.cipher && rx_.cipher == keys.cipher);
    FERRY_CHECK(tx_ctx_ != nullptr && rx_ctx_ != nullptr);
    set_key(tx_ctx_.get(), tx_, 1);
    set_key(rx_ctx_.get(), rx_, 0);
}

RecordLayer::~RecordLayer() = default;
RecordLayer::RecordLayer(RecordLayer&&) noexcept = default;
RecordLayer& RecordLayer::operator=(RecordLayer&&) noexcept = default;

void RecordLayer::seal_record(uint8_t content_type,
                              std::span<const std::span<const std::byte>> pieces, size_t& piece,
                              size_t& offset, size_t len, std::byte* out) noexcept {
    const size_t body = len + 1 + kTagLen;
    // RFC 8446 §5.2: opaque_type application_data, legacy_record_version 0x0303.
    out[0] = std::byte{kApplicationData};
    out[1] = std::byte{0x03};
    out[2] = std::byte{0x03};
    out[3] = static_cast<std::byte>(body >> 8);
    out[4] = static_cast<std::byte>(body);

    unsigned char nonce[kIvLen];
    make_nonce(tx_, nonce);
    EVP_CIPHER_CTX* ctx = tx_ctx_.get();
    int n = 0;
    // Failures below need a broken libcrypto (the sizes are ours, not the peer's): fatal.
    FERRY_CHECK(EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce, 1) == 1);
    FERRY_CHECK(EVP_CipherUpdate(ctx, nullptr, &n, uc(out), as_int(kRecordHeaderLen)) == 1);
    unsigned char* dst = uc(out) + kRecordHeaderLen;
    for (size_t left = len; left > 0;) {
        const std::span<const std::byte> p = pieces[piece];
        const size_t take = std::min(left, p.size() - offset);
        if (take > 0) {
            FERRY_CHECK(EVP_CipherUpdate(ctx, dst, &n, uc(p.data() + offset), as_int(take)) == 1);
            dst += n;
            offset += take;
            left -= take;
        }
        if (offset == p.size()) {
            ++piece;
            offset = 0;
        }
    }
    FERRY_CHECK(EVP_CipherUpdate(ctx, dst, &n, &content_type, 1) == 1);
    dst += n;
    FERRY_CHECK(EVP_CipherFinal_ex(ctx, dst, &n) == 1);
    dst += n;
    FERRY_CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, as_int(kTagLen), dst) == 1);
    FERRY_DCHECK(dst + kTagLen == uc(out) + kRecordHeaderLen + body);
    ++tx_.seq;
}

SealResult RecordLayer::seal(std::span<const std::span<const std::byte>> plaintext,
                             std::span<std::byte> out) noexcept {
    size_t total = 0;
    for (const auto& p : plaintext) {
        total += p.size();
    }
    SealResult r;
    size_t piece = 0;
    size_t offset = 0;
    while (r.consumed < total) {
        const size_t room = out.size() - r.written;
        if (room <= kRecordOverhead) {
            break;
        }
        const size_t len =
            std::min({total - r.consumed, kMaxRecordPlaintext, room - kRecordOverhead});
        seal_record(kApplicationData, plaintext, piece, offset, len, out.data() + r.written);
        r.written += len + kRecordOverhead;
        r.consumed += len;
        ++stats_.tx_records;
        stats_.tx_bytes += len;
    }
    return r;
}

size_t RecordLayer::seal_alert(AlertDescription description, std::span<std::byte> out) noexcept {
    FERRY_CHECK(out.size() >= kAlertRecordSize);
    // RFC 8446 §6: the level is ignored in TLS 1.3 but closure alerts still say warning.
    const bool closure = description == AlertDescription::CloseNotify ||
                         description == AlertDescription::UserCanceled;
    const std::byte alert[2] = {std::byte{static_cast<uint8_t>(closure ? 1 : 2)},
                                static_cast<std::byte>(description)};
    const std::span<const std::byte> piece(alert);
    size_t index = 0;
    size_t offset = 0;
    seal_record(kAlert, {&piece, 1}, index, offset, sizeof(alert), out.data());
    return kAlertRecordSize;
}

size_t RecordLayer::update_tx_key(std::span<std::byte> out, bool request_peer_update) noexcept {
    FERRY_CHECK(out.size() >= kKeyUpdateRecordSize);
    // RFC 8446 §4.6.3: KeyUpdate { KeyUpdateRequest request_update; }, sent under the old key.
    const std::byte msg[5] = {std::byte{kKeyUpdate}, std::byte{0}, std::byte{0}, std::byte{1},
                              std::byte{static_cast<uint8_t>(request_peer_update ? 1 : 0)}};
    const std::span<const std::byte> piece(msg);
    size_t index = 0;
    size_t offset = 0;
    seal_record(kHandshake, {&piece, 1}, index, offset, sizeof(msg), out.data());

    DirectionKeys next;
    FERRY_CHECK(next_direction_keys(tx_, &next));
    set_key(tx_ctx_.get(), next, 1);
    tx_ = next;
    ++stats_.tx_rotations;
    stats_.tx_records = 0;
    stats_.tx_bytes = 0;
    return kKeyUpdateRecordSize;
}

OpenResult RecordLayer::open(std::span<std::byte> buf) noexcept {
    if (buf.size() < kRecordHeaderLen) {
        OpenResult r;
        r.needed = kRecordHeaderLen;
        return r;
    }
    const auto outer_type = static_cast<uint8_t>(buf[0]);
    const size_t len = record_size(buf) - kRecordHeaderLen;
    // RFC 8446 §5: after the handshake every record is protected and typed application_data.
    if (outer_type != kApplicationData) {
        if (outer_type == kAlert) {
            return error("unprotected alert after the handshake",
                         AlertDescription::UnexpectedMessage);
        }
        if (outer_type == kChangeCipherSpec) {
            return error("change_cipher_spec after the handshake",
                         AlertDescription::UnexpectedMessage);
        }
        return error("not a TLS 1.3 protected record", AlertDescription::UnexpectedMessage);
    }
    if (len > kMaxCiphertext) {
        return error("record overflow", AlertDescription::RecordOverflow);
    }
    if (len < kTagLen + 1) {
        return error("record too short", AlertDescription::DecodeError);
    }
    // RFC 8446 §5.4: TLSInnerPlaintext (content, type, padding) is at most 2^14 + 1 bytes.
    if (len - kTagLen > kMaxInnerPlaintext) {
        return error("record overflow", AlertDescription::RecordOverflow);
    }
    const size_t total = kRecordHeaderLen + len;
    if (buf.size() < total) {
        OpenResult r;
        r.needed = total;
        return r;
    }

    unsigned char nonce[kIvLen];
    make_nonce(rx_, nonce);
    EVP_CIPHER_CTX* ctx = rx_ctx_.get();
    unsigned char* body = uc(buf.data()) + kRecordHeaderLen;
    const size_t cipher_len = len - kTagLen;
    int n = 0;
    int m = 0;
    FERRY_CHECK(EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce, 0) == 1);
    FERRY_CHECK(
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, as_int(kTagLen), body + cipher_len) == 1);
    FERRY_CHECK(EVP_CipherUpdate(ctx, nullptr, &n, uc(buf.data()), as_int(kRecordHeaderLen)) == 1);
    // In place: the tag check comes last, so on failure the buffer holds garbage the caller drops.
    if (EVP_CipherUpdate(ctx, body, &n, body, as_int(cipher_len)) != 1 ||
        EVP_CipherFinal_ex(ctx, body + n, &m) != 1) {
        return error("record authentication failed", AlertDescription::BadRecordMac);
    }
    ++rx_.seq;

    // RFC 8446 §5.4: strip zero padding; the last non-zero byte is the real content type.
    size_t inner = cipher_len;
    while (inner > 0 && body[inner - 1] == 0) {
        --inner;
    }
    if (inner == 0) {
        return error("record has no content type", AlertDescription::UnexpectedMessage);
    }
    const uint8_t content_type = body[inner - 1];
    const std::span<std::byte> content{buf.data() + kRecordHeaderLen, inner - 1};

    OpenResult r;
    r.content_type = content_type;
    r.consumed = total;
    switch (content_type) {
        case kApplicationData:
            r.status = OpenStatus::Data;
            r.plaintext = content;
            ++stats_.rx_records;
            stats_.rx_bytes += content.size();
            return r;
        case kAlert: {
            if (content.size() != 2) {
                return error("malformed alert", AlertDescription::DecodeError);
            }
            const auto description = static_cast<uint8_t>(content[1]);
            if (description == static_cast<uint8_t>(AlertDescription::CloseNotify)) {
                r.status = OpenStatus::Eof;
                return r;
            }
            r = error(peer_alert_text(description), static_cast<AlertDescription>(description));
            r.peer_alert = true;
            return r;
        }
        case kHandshake:
            return handle_handshake(content, total);
        default:
            return error("unexpected inner content type", AlertDescription::UnexpectedMessage);
    }
}

OpenResult RecordLayer::handle_handshake(std::span<std::byte> msg, size_t consumed) noexcept {
    if (msg.size() < 4) {
        return error("truncated post-handshake message", AlertDescription::DecodeError);
    }
    const auto type = static_cast<uint8_t>(msg[0]);
    const size_t len = size_t{static_cast<uint8_t>(msg[1])} << 16 |
                       size_t{static_cast<uint8_t>(msg[2])} << 8 | static_cast<uint8_t>(msg[3]);
    if (type == kNewSessionTicket && drop_tickets_) {
        // The record may hold several tickets; every message in it must be one, and whole.
        for (size_t at = 0; at < msg.size();) {
            if (msg.size() - at < 4 || static_cast<uint8_t>(msg[at]) != kNewSessionTicket) {
                return error("malformed NewSessionTicket record", AlertDescription::DecodeError);
            }
            const size_t n = size_t{static_cast<uint8_t>(msg[at + 1])} << 16 |
                             size_t{static_cast<uint8_t>(msg[at + 2])} << 8 |
                             static_cast<uint8_t>(msg[at + 3]);
            if (n > msg.size() - at - 4) {
                return error("NewSessionTicket split across records",
                             AlertDescription::DecodeError);
            }
            at += 4 + n;
        }
        OpenResult r;
        r.status = OpenStatus::Skipped;
        r.content_type = kHandshake;
        r.consumed = consumed;
        return r;
    }
    if (type != kKeyUpdate) {
        // Tickets are off at both ends and nothing requests post-handshake authentication.
        return error(type == kNewSessionTicket ? "unexpected NewSessionTicket (tickets are off)"
                                               : "unexpected post-handshake message",
                     AlertDescription::UnexpectedMessage);
    }
    // RFC 8446 §5.1: a KeyUpdate must end its record, since the key changes right after it.
    if (4 + len != msg.size() || len != 1) {
        return error("malformed KeyUpdate", AlertDescription::DecodeError);
    }
    const auto request = static_cast<uint8_t>(msg[4]);
    if (request > 1) {
        return error("malformed KeyUpdate", AlertDescription::IllegalParameter);
    }
    DirectionKeys next;
    FERRY_CHECK(next_direction_keys(rx_, &next));
    set_key(rx_ctx_.get(), next, 0);
    rx_ = next;
    ++stats_.rx_rotations;
    stats_.rx_records = 0;
    stats_.rx_bytes = 0;

    OpenResult r;
    r.status = OpenStatus::KeyUpdate;
    r.content_type = kHandshake;
    r.update_requested = request == 1;
    r.consumed = consumed;
    return r;
}

}  // namespace ferry::tls
