// Kernel TLS (SOL_TLS): hands a connection's TLS 1.3 traffic keys to the kernel after the
// handshake, so send/recv (and io_uring SEND/RECV) carry plaintext while the kernel seals and
// opens records. Used when the kernel has the TLS ULP; otherwise RecordLayer does the work.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "ferry/tls/key_schedule.h"

namespace ferry::tls {

// Probes once per process (a loopback TCP pair, TCP_ULP "tls", then TLS_TX and TLS_RX with a
// dummy AES-128-GCM TLS 1.3 key) and caches the answer. Unavailable carries the reason, e.g.
// "kernel has no TLS ULP (CONFIG_TLS): setsockopt(TCP_ULP, \"tls\"): No such file or directory".
[[nodiscard]] const absl::Status& ktls_probe();
[[nodiscard]] inline bool ktls_supported() { return ktls_probe().ok(); }

// Whether the kernel can replace a kTLS key in place (TLS 1.3 KeyUpdate): a second TLS_TX on a
// kTLS socket fails with EBUSY before Linux 6.14. Probed once and cached; false without kTLS.
// Without it, rotating a kTLS connection's keys means a new connection.
[[nodiscard]] bool ktls_rekey_supported();

// Installs kTLS on a connected TCP socket: TCP_ULP "tls", then TLS_TX with `tx` and TLS_RX with
// `rx` (their keys, IVs and next sequence numbers). Afterwards plain send() writes application
// data records and recv() returns decrypted application data. Bytes user space already took off
// the socket (Handshake::leftover_input) are not seen by the kernel: open them with a RecordLayer
// first and pass its rx_keys(), whose sequence number counts them. On error the socket is
// unusable for TLS (the ULP may be attached): close it.
// Under kTLS RX a plain recv() fails with EIO when the next record is not application data
// (an alert, a KeyUpdate): read that one with ktls_recv() or a recvmsg with kKtlsCmsgSpace of
// control buffer. io_uring SEND_ZC is refused (EOPNOTSUPP) on kTLS sockets; use SEND.
[[nodiscard]] absl::Status install_ktls(int fd, const DirectionKeys& tx, const DirectionKeys& rx);

enum class KtlsDirection : uint8_t { Tx, Rx };

// Replaces one direction's key on a kTLS socket after a KeyUpdate. FailedPrecondition with
// "kernel cannot rekey kTLS (needs Linux 6.14)" where the kernel answers EBUSY.
[[nodiscard]] absl::Status ktls_rekey(int fd, KtlsDirection direction, const DirectionKeys& keys);

// Control-message space a recvmsg on a kTLS RX socket needs to learn the record type.
inline constexpr size_t kKtlsCmsgSpace = CMSG_SPACE(sizeof(uint8_t));

// The TLS record type from a completed recvmsg's control messages (TLS_GET_RECORD_TYPE), or
// 23 (application_data) when the kernel attached none. For io_uring RECVMSG completions.
[[nodiscard]] uint8_t ktls_record_type(const msghdr& msg) noexcept;

enum class KtlsRecordKind : uint8_t {
    Data,         // application data
    CloseNotify,  // clean end of the peer's stream
    Alert,        // any other alert: the connection is over (`alert` says which)
    // The peer rotated its key. On kernels without kTLS rekey the old RX key stays installed
    // and cannot decrypt what follows, so kTLS use on this connection must end.
    KeyUpdate,
    Malformed,  // a control record that is neither a well-formed alert nor a KeyUpdate
};

struct KtlsRecord {
    KtlsRecordKind kind = KtlsRecordKind::Data;
    uint8_t record_type = 23;
    uint8_t alert = 0;              // Alert: the description
    bool update_requested = false;  // KeyUpdate: the peer asked us to rotate too
};

// Classifies a record the kernel returned with its type (after ktls_record_type).
[[nodiscard]] KtlsRecord classify_ktls_record(uint8_t record_type,
                                              std::span<const std::byte> payload) noexcept;

struct KtlsRecvResult {
    int err = 0;       // 0, or the errno of recvmsg (EBADMSG: a record failed authentication)
    size_t bytes = 0;  // bytes placed in the buffer (0 with Data means TCP end of stream)
    KtlsRecord record;
};

// One blocking-or-not recvmsg on a kTLS RX socket with room for the record type: returns data
// (never mixed with a control record) or one whole control record, classified. `flags` go to
// recvmsg (MSG_DONTWAIT...). `buf` must hold a whole control record's payload (at least 16 KiB
// is safe), since the kernel truncates control records to the buffer.
[[nodiscard]] KtlsRecvResult ktls_recv(int fd, std::span<std::byte> buf, int flags = 0) noexcept;

// Sends one record of `record_type` (e.g. 21 alert, 22 handshake) through kTLS TX with the
// TLS_SET_RECORD_TYPE control message; `flags` go to sendmsg (MSG_DONTWAIT...). Returns 0 or an
// errno (EAGAIN: the socket buffer is full and nothing was sent).
[[nodiscard]] int ktls_send_record(int fd, uint8_t record_type, std::span<const std::byte> payload,
                                   int flags = 0) noexcept;
// A TLS 1.3 KeyUpdate (RFC 8446 §4.6.3) through kTLS TX, under the current key; install the next
// TX key with ktls_rekey() right after it. Returns 0 or an errno, like ktls_send_record.
[[nodiscard]] int ktls_send_key_update(int fd, bool request_peer_update, int flags = 0) noexcept;
// close_notify through kTLS TX: the clean way to end the stream before shutdown(SHUT_WR).
[[nodiscard]] int ktls_send_close_notify(int fd, int flags = 0) noexcept;

}  // namespace ferry::tls
