// User-space TLS 1.3 record protection (RFC 8446 §5) for connections without kTLS, and the one
// place that handles post-handshake records (KeyUpdate, alerts). Sits between the tunnel session's
// plaintext buffers and the io_uring socket: seal() on the way out, open() on the way in.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "ferry/tls/alert.h"
#include "ferry/tls/key_schedule.h"

namespace ferry::tls {

// Wire geometry of a protected record: 5-byte header, ciphertext of content + 1 type byte, tag.
inline constexpr size_t kRecordHeaderLen = 5;
inline constexpr size_t kMaxRecordPlaintext = 16384;                       // RFC 8446 §5.1
inline constexpr size_t kRecordOverhead = kRecordHeaderLen + 1 + kTagLen;  // 22
inline constexpr size_t kMaxRecordSize = kRecordHeaderLen + kMaxRecordPlaintext + 256;  // §5.2
inline constexpr size_t kKeyUpdateRecordSize = kRecordOverhead + 5;  // 4-byte header + 1 byte
inline constexpr size_t kAlertRecordSize = kRecordOverhead + 2;

// Bytes seal() writes for `plaintext` bytes in full-size records.
[[nodiscard]] constexpr size_t sealed_size(size_t plaintext) noexcept {
    return plaintext +
           (plaintext + kMaxRecordPlaintext - 1) / kMaxRecordPlaintext * kRecordOverhead;
}

// Size of the record that starts at `buf` (header included), or 0 while fewer than the 5 header
// bytes are present. Lets a receiver find record boundaries without decrypting.
[[nodiscard]] size_t record_size(std::span<const std::byte> buf) noexcept;

// How many more bytes `stream` needs to end on a record boundary (0 when it does). Handing RX to
// kTLS mid-stream (Handshake::leftover_input) must not split a record between user space and
// the kernel: read exactly this many more bytes in user space first, then open them all.
[[nodiscard]] size_t bytes_to_record_boundary(std::span<const std::byte> stream) noexcept;

struct SealResult {
    size_t written = 0;   // bytes of `out` filled with whole records
    size_t consumed = 0;  // plaintext bytes protected, taken from the front of the input
};

enum class OpenStatus : uint8_t {
    Data,       // `plaintext` holds application data (possibly empty: RFC 8446 §5.4 allows it)
    KeyUpdate,  // peer rotated its key; RX follows it already. See `update_requested`.
    Eof,        // close_notify: clean end of the peer's stream
    Skipped,    // a record with nothing for the caller (NewSessionTickets, see drop_tickets)
    NeedMore,   // the record at the front is incomplete; `needed` says how big it is
    Error,      // protocol or authentication failure: close the connection
};

struct OpenResult {
    OpenStatus status = OpenStatus::NeedMore;
    uint8_t content_type = 0;  // inner content type of the record just opened (RFC 8446 §5.2)
    // KeyUpdate: the peer set update_requested (RFC 8446 §4.6.3). The caller must answer with
    // update_tx_key() before it sends any more application data.
    bool update_requested = false;
    // Error: the alert describing it (RFC 8446 §6.2). When `peer_alert` it is what the peer
    // sent; otherwise it is the alert to send (seal_alert) before closing.
    uint8_t alert = 0;
    bool peer_alert = false;
    size_t consumed = 0;  // bytes at the front of the buffer this record took (0 for NeedMore)
    size_t needed = 0;    // NeedMore: bytes the buffer must hold (header, then the whole record)
    std::span<std::byte> plaintext;  // Data: inside the caller's buffer
    const char* error = nullptr;     // Error: static text, e.g. "record authentication failed"
};

// Record counters for the keys in use and the rotations so far. The bytes are plaintext bytes;
// rekey policy compares them against --rekey-bytes and the AEAD limits of RFC 8446 §5.5.
struct RecordStats {
    uint64_t tx_records = 0;  // under the current TX key
    uint64_t tx_bytes = 0;
    uint64_t rx_records = 0;  // under the current RX key
    uint64_t rx_bytes = 0;
    uint64_t tx_rotations = 0;
    uint64_t rx_rotations = 0;
};

// One connection's TLS 1.3 record protection after the handshake, both directions. The AEAD
// contexts are made once per direction and re-keyed in place on rotation; a record costs one
// nonce set-up and one pass over its bytes, with no allocation.
//
// Shard-local, movable, not copyable. After open() returns Eof or Error, or a call reports a
// failure, the connection is finished and the object must only be destroyed.
class RecordLayer final {
  public:
    // Starts from the handshake's keys (their sequence numbers included). Aborts only when
    // libcrypto cannot set up the cipher, which means out of memory or a broken install.
    explicit RecordLayer(const TrafficKeys& keys);
    ~RecordLayer();
    RecordLayer(RecordLayer&&) noexcept;
    RecordLayer& operator=(RecordLayer&&) noexcept;
    RecordLayer(const RecordLayer&) = delete;
    RecordLayer& operator=(const RecordLayer&) = delete;

    // Protects the concatenation of `plaintext` (an iovec-like gather list) into `out` as
    // application_data records of at most 16 KiB of content each, reading every input byte once
    // and writing every output byte once. Fills `out` with as many whole records as fit; the last
    // one is shorter when `out` runs short. Input and output must not overlap.
    [[nodiscard]] SealResult seal(std::span<const std::span<const std::byte>> plaintext,
                                  std::span<std::byte> out) noexcept;
    [[nodiscard]] SealResult seal(std::span<const std::byte> plaintext,
                                  std::span<std::byte> out) noexcept {
        return seal(std::span<const std::span<const std::byte>>(&plaintext, 1), out);
    }

    // Writes a protected alert (kAlertRecordSize bytes) into `out` and returns its size:
    // close_notify to end the stream cleanly, or OpenResult::alert after an error.
    [[nodiscard]] size_t seal_alert(AlertDescription description,
                                    std::span<std::byte> out) noexcept;

    // Decrypts, in place, the record at the front of `buf` (the caller's receive buffer). The
    // record's bytes are overwritten: the caller consumes `consumed` bytes afterwards and never
    // opens them again. A buffer of kMaxRecordSize always has room for the next record, since a
    // longer one is an Error before it is complete. Peer input never aborts; it yields Error
    // with a static reason.
    [[nodiscard]] OpenResult open(std::span<std::byte> buf) noexcept;

    // A client of a server that is not ours: its NewSessionTickets open as Skipped instead of
    // an error (we never resume, so they are dropped unread).
    void drop_tickets() noexcept { drop_tickets_ = true; }

    // Rotates the TX key (RFC 8446 §4.6.3): writes the KeyUpdate record, protected with the
    // current key, into `out` (at least kKeyUpdateRecordSize bytes), then switches to the next
    // traffic secret. Send the returned bytes before anything sealed afterwards. Set
    // `request_peer_update` to ask the peer to rotate too; never set it when answering a request.
    [[nodiscard]] size_t update_tx_key(std::span<std::byte> out,
                                       bool request_peer_update = false) noexcept;

    [[nodiscard]] const RecordStats& stats() const noexcept { return stats_; }
    [[nodiscard]] Cipher cipher() const noexcept { return tx_.cipher; }
    // Current keys and sequence numbers, e.g. to hand the connection to kTLS after user space
    // opened the handshake's leftover records.
    [[nodiscard]] const DirectionKeys& tx_keys() const noexcept { return tx_; }
    [[nodiscard]] const DirectionKeys& rx_keys() const noexcept { return rx_; }

  private:
    struct CtxDeleter {
        void operator()(EVP_CIPHER_CTX* ctx) const noexcept;
    };
    using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

    // Seals one record of `content_type` from a gather list; `pieces`/`offset` track the cursor.
    void seal_record(uint8_t content_type, std::span<const std::span<const std::byte>> pieces,
                     size_t& piece, size_t& offset, size_t len, std::byte* out) noexcept;
    [[nodiscard]] OpenResult handle_handshake(std::span<std::byte> body, size_t consumed) noexcept;

    DirectionKeys tx_;
    DirectionKeys rx_;
    CtxPtr tx_ctx_;
    CtxPtr rx_ctx_;
    RecordStats stats_;
    bool drop_tickets_ = false;
};

}  // namespace ferry::tls
