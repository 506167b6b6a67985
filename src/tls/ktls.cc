#include "ferry/tls/ktls.h"

#include <arpa/inet.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

namespace ferry::tls {
namespace {

constexpr char kUlp[] = "tls";

class Fd final {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        std::swap(fd_, other.fd_);
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const noexcept { return fd_; }

  private:
    int fd_ = -1;
};

std::string errno_text(const char* call, int err) {
    return absl::StrCat(call, ": ", std::strerror(err));
}

// A connected loopback TCP pair for the probes; kTLS attaches only to established TCP sockets.
absl::Status loopback_pair(Fd* client, Fd* server) {
    Fd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (listener.get() < 0) {
        return absl::UnavailableError(errno_text("socket", errno));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listener.get(), 1) != 0 ||
        getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        return absl::UnavailableError(errno_text("loopback listen", errno));
    }
    Fd c(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (c.get() < 0 || connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        return absl::UnavailableError(errno_text("loopback connect", errno));
    }
    Fd s(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (s.get() < 0) {
        return absl::UnavailableError(errno_text("loopback accept", errno));
    }
    *client = std::move(c);
    *server = std::move(s);
    return absl::OkStatus();
}

union CryptoInfo {
    tls_crypto_info info;
    tls12_crypto_info_aes_gcm_128 aes128;
    tls12_crypto_info_aes_gcm_256 aes256;
    tls12_crypto_info_chacha20_poly1305 chacha;
};

// The two AES-GCM layouts differ only in key length.
template <class GcmInfo>
socklen_t fill_gcm(GcmInfo& c, uint16_t cipher_type, const unsigned char* iv,
                   const unsigned char* key, const unsigned char* seq) noexcept {
    c.info.version = TLS_1_3_VERSION;
    c.info.cipher_type = cipher_type;
    std::memcpy(c.salt, iv, sizeof(c.salt));
    std::memcpy(c.iv, iv + sizeof(c.salt), sizeof(c.iv));
    std::memcpy(c.key, key, sizeof(c.key));
    std::memcpy(c.rec_seq, seq, sizeof(c.rec_seq));
    return sizeof(c);
}

// Lays the keys out as the kernel wants them. For the GCM suites the 12-byte TLS 1.3 IV splits
// into a 4-byte salt and an 8-byte "iv"; ChaCha20-Poly1305 takes all 12 bytes as its iv.
socklen_t fill_crypto_info(const DirectionKeys& keys, CryptoInfo* ci) noexcept {
    std::memset(ci, 0, sizeof(*ci));
    unsigned char seq[8];
    for (size_t i = 0; i < 8; ++i) {
        seq[i] = static_cast<unsigned char>(keys.seq >> (56 - 8 * i));
    }
    const auto* iv = reinterpret_cast<const unsigned char*>(keys.iv.data());
    const auto* key = reinterpret_cast<const unsigned char*>(keys.key.data());
    switch (keys.cipher) {
        case Cipher::Aes128Gcm:
            return fill_gcm(ci->aes128, TLS_CIPHER_AES_GCM_128, iv, key, seq);
        case Cipher::Aes256Gcm:
            return fill_gcm(ci->aes256, TLS_CIPHER_AES_GCM_256, iv, key, seq);
        case Cipher::Chacha20Poly1305: {
            auto& c = ci->chacha;
            c.info.version = TLS_1_3_VERSION;
            c.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
            std::memcpy(c.iv, iv, sizeof(c.iv));
            std::memcpy(c.key, key, sizeof(c.key));
            std::memcpy(c.rec_seq, seq, sizeof(c.rec_seq));
            return sizeof(c);
        }
    }
    return 0;
}

// setsockopt(SOL_TLS, TLS_TX/TLS_RX) with the keys wiped from the stack afterwards; 0 or errno.
int set_keys(int fd, int optname, const DirectionKeys& keys) noexcept {
    CryptoInfo ci;
    const socklen_t len = fill_crypto_info(keys, &ci);
    const int rc = setsockopt(fd, SOL_TLS, optname, &ci, len);
    const int err = rc == 0 ? 0 : errno;
    secure_wipe(&ci, sizeof(ci));
    return err;
}

int attach_ulp(int fd) noexcept {
    return setsockopt(fd, IPPROTO_TCP, TCP_ULP, kUlp, sizeof(kUlp)) == 0 ? 0 : errno;
}

absl::Status run_probe() {
    Fd client;
    Fd server;
    if (absl::Status s = loopback_pair(&client, &server); !s.ok()) {
        return absl::UnavailableError(
            absl::StrCat("cannot probe kTLS without a loopback TCP pair: ", s.message()));
    }
    if (const int err = attach_ulp(client.get()); err != 0) {
        if (err == ENOENT) {
            return absl::UnavailableError(
                absl::StrCat("kernel has no TLS ULP (CONFIG_TLS): ",
                             errno_text("setsockopt(TCP_ULP, \"tls\")", err)));
        }
        return absl::UnavailableError(errno_text("setsockopt(TCP_ULP, \"tls\")", err));
    }
    DirectionKeys dummy;  // all-zero AES-128-GCM key: no byte is ever sent under it
    if (const int err = set_keys(client.get(), TLS_TX, dummy); err != 0) {
        return absl::UnavailableError(
            absl::StrCat("kTLS refuses TLS 1.3 AES-128-GCM: ", errno_text("TLS_TX", err)));
    }
    if (const int err = set_keys(client.get(), TLS_RX, dummy); err != 0) {
        return absl::UnavailableError(
            absl::StrCat("kTLS refuses TLS 1.3 AES-128-GCM: ", errno_text("TLS_RX", err)));
    }
    return absl::OkStatus();
}

bool run_rekey_probe() {
    if (!ktls_supported()) {
        return false;
    }
    Fd client;
    Fd server;
    if (!loopback_pair(&client, &server).ok() || attach_ulp(client.get()) != 0) {
        return false;
    }
    DirectionKeys keys;
    if (set_keys(client.get(), TLS_TX, keys) != 0) {
        return false;
    }
    keys.key[0] = std::byte{1};
    // Before Linux 6.14 the second TLS_TX answers EBUSY; since then it installs the next key.
    return set_keys(client.get(), TLS_TX, keys) == 0;
}

}  // namespace

const absl::Status& ktls_probe() {
    static const absl::Status status = run_probe();
    return status;
}

bool ktls_rekey_supported() {
    static const bool supported = run_rekey_probe();
    return supported;
}

absl::Status install_ktls(int fd, const DirectionKeys& tx, const DirectionKeys& rx) {
    if (const int err = attach_ulp(fd); err != 0) {
        if (err == ENOENT) {
            return absl::UnavailableError(absl::StrCat("kernel has no TLS ULP (CONFIG_TLS): ",
                                                       errno_text("setsockopt(TCP_ULP)", err)));
        }
        return absl::InternalError(errno_text("setsockopt(TCP_ULP, \"tls\")", err));
    }
    if (const int err = set_keys(fd, TLS_TX, tx); err != 0) {
        return absl::InternalError(
            absl::StrCat("kTLS ", cipher_name(tx.cipher), " ", errno_text("TLS_TX", err)));
    }
    if (const int err = set_keys(fd, TLS_RX, rx); err != 0) {
        return absl::InternalError(
            absl::StrCat("kTLS ", cipher_name(rx.cipher), " ", errno_text("TLS_RX", err)));
    }
#ifdef TLS_RX_EXPECT_NO_PAD
    // Lets the kernel decrypt straight into the receiver's buffer (Linux 6.0+). Neither ferry
    // nor OpenSSL pads records; a padded one is still handled, just re-decrypted. Best effort.
    const int one = 1;
    (void)setsockopt(fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one));
#endif
    return absl::OkStatus();
}

absl::Status ktls_rekey(int fd, KtlsDirection direction, const DirectionKeys& keys) {
    const int err = set_keys(fd, direction == KtlsDirection::Tx ? TLS_TX : TLS_RX, keys);
    if (err == 0) {
        return absl::OkStatus();
    }
    if (err == EBUSY) {
        return absl::FailedPreconditionError(
            absl::StrCat("kernel cannot rekey kTLS (needs Linux 6.14): ",
                         errno_text(direction == KtlsDirection::Tx ? "TLS_TX" : "TLS_RX", err)));
    }
    return absl::InternalError(errno_text(
        direction == KtlsDirection::Tx ? "kTLS rekey TLS_TX" : "kTLS rekey TLS_RX", err));
}

uint8_t ktls_record_type(const msghdr& msg) noexcept {
    auto* m = const_cast<msghdr*>(&msg);  // the CMSG_* macros take a non-const msghdr
    for (cmsghdr* c = CMSG_FIRSTHDR(m); c != nullptr; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE) {
            return *CMSG_DATA(c);
        }
    }
    return 23;
}

KtlsRecord classify_ktls_record(uint8_t record_type, std::span<const std::byte> payload) noexcept {
    KtlsRecord r;
    r.record_type = record_type;
    const auto at = [&](size_t i) { return static_cast<uint8_t>(payload[i]); };
    switch (record_type) {
        case 23:
            r.kind = KtlsRecordKind::Data;
            return r;
        case 21:  // alert: level, description
            if (payload.size() != 2) {
                r.kind = KtlsRecordKind::Malformed;
            } else if (at(1) == 0) {
                r.kind = KtlsRecordKind::CloseNotify;
            } else {
                r.kind = KtlsRecordKind::Alert;
                r.alert = at(1);
            }
            return r;
        case 22:  // RFC 8446 §4.6.3 KeyUpdate: type 24, length 1, request_update 0 or 1
            if (payload.size() == 5 && at(0) == 24 && at(1) == 0 && at(2) == 0 && at(3) == 1 &&
                at(4) <= 1) {
                r.kind = KtlsRecordKind::KeyUpdate;
                r.update_requested = at(4) == 1;
            } else {
                r.kind = KtlsRecordKind::Malformed;
            }
            return r;
        default:
            r.kind = KtlsRecordKind::Malformed;
            return r;
    }
}

KtlsRecvResult ktls_recv(int fd, std::span<std::byte> buf, int flags) noexcept {
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) unsigned char control[kKtlsCmsgSpace];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    KtlsRecvResult r;
    const ssize_t n = recvmsg(fd, &msg, flags);
    if (n < 0) {
        r.err = errno;
        return r;
    }
    r.bytes = static_cast<size_t>(n);
    r.record = classify_ktls_record(ktls_record_type(msg), buf.first(r.bytes));
    return r;
}

int ktls_send_record(int fd, uint8_t record_type, std::span<const std::byte> payload,
                     int flags) noexcept {
    iovec iov{const_cast<std::byte*>(payload.data()), payload.size()};
    alignas(cmsghdr) unsigned char control[kKtlsCmsgSpace] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_TLS;
    c->cmsg_type = TLS_SET_RECORD_TYPE;
    c->cmsg_len = CMSG_LEN(sizeof(record_type));
    *CMSG_DATA(c) = record_type;
    const ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
    if (n < 0) {
        return errno;
    }
    return static_cast<size_t>(n) == payload.size() ? 0 : EIO;
}

int ktls_send_key_update(int fd, bool request_peer_update, int flags) noexcept {
    // HandshakeType key_update (24), a 3-byte length of 1, KeyUpdateRequest.
    const std::byte msg[5] = {std::byte{24}, std::byte{0}, std::byte{0}, std::byte{1},
                              std::byte{static_cast<uint8_t>(request_peer_update ? 1 : 0)}};
    return ktls_send_record(fd, 22, msg, flags);
}

int ktls_send_close_notify(int fd, int flags) noexcept {
    const std::byte alert[2] = {std::byte{1}, std::byte{0}};  // warning, close_notify
    return ktls_send_record(fd, 21, alert, flags);
}

}  // namespace ferry::tls
