// TlsLink: the armored tunnel transport — mutual TLS 1.3 over a TCP socket driven by the ring.
//
// The handshake runs in OpenSSL over memory BIOs (tls::Handshake); the shard moves its bytes.
// Then either the kernel takes the traffic keys (kTLS: TLS_TX/TLS_RX, plain sends, no SEND_ZC)
// or the link protects records itself (tls::RecordLayer): outgoing plaintext is sealed straight
// from the session's slices into pool buffers, incoming records are opened in place and handed
// up as slices of the receive buffer. Only a record that straddles two receive buffers is copied
// (counted in ferry_bytes_copied_total).
//
// Rotation: every rekey_bytes / rekey_interval the TX key moves on — by TLS 1.3 KeyUpdate when
// the peer said it can take one (sealed by the link in user space; under kTLS sent as a handshake
// record and followed by the next TX key, where the kernel can rekey: Linux 6.14+), else (kTLS
// without kernel rekey, or changed certificates) by asking the owner for a make-before-break
// reconnect. A peer's KeyUpdate under kTLS arrives as a control record; the next RX key goes
// into the kernel before reading resumes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ferry/tls/handshake.h"
#include "ferry/tls/ktls.h"
#include "ferry/tls/record_layer.h"
#include "ferry/tls/tls_context.h"
#include "ferry/tunnel/link.h"
#include "ferry/tunnel/socket_io.h"

namespace ferry::tunnel {

enum class KtlsMode : uint8_t { Auto, On, Off };

struct TlsLinkOptions {
    KtlsMode ktls = KtlsMode::Auto;
    uint64_t rekey_bytes = 0;        // 0 = no byte limit
    uint64_t rekey_interval_ns = 0;  // 0 = no age limit
};

class TlsLink final : public Link, private SocketEvents, private Rearmable {
  public:
    // Takes ownership of the connected socket `fd`; `tls` must outlive the link.
    TlsLink(Context& ctx, int fd, const tls::TlsContext& tls,
            const TlsLinkOptions& options) noexcept;
    ~TlsLink() override;

    void start(LinkSink* sink) noexcept override;
    void write(WriteBatch* batch) noexcept override;
    void close() noexcept override;
    [[nodiscard]] const char* kind() const noexcept override;
    [[nodiscard]] bool established() const noexcept override { return mode_ != Mode::Handshake; }
    [[nodiscard]] uint32_t capabilities() const noexcept override;
    void set_peer_capabilities(uint32_t caps) noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    [[nodiscard]] std::string_view peer_identity() const noexcept override { return identity_; }

  private:
    enum class Mode : uint8_t { Handshake, User, Kernel };

    void on_socket_data(buf::Chunk&& bytes) noexcept override;
    void on_socket_eof() noexcept override;
    void on_socket_error(const char* what, int err) noexcept override;
    bool on_socket_recv_error(int err) noexcept override;
    void on_socket_sent() noexcept override;
    void on_socket_connected(int) noexcept override {}
    void on_socket_closed() noexcept override;
    void on_socket_recv_stopped() noexcept override;

    void handshake_input(std::span<const std::byte> bytes) noexcept;
    void handshake_done() noexcept;
    void user_input(buf::Chunk&& bytes) noexcept;
    // Opens the record in `chunk` at [offset, offset+size) in place; false when the link died.
    [[nodiscard]] bool open_record(buf::Chunk& chunk, uint32_t offset, uint32_t size) noexcept;
    void try_install_ktls() noexcept;
    // kTLS: reads the non-data record that failed a plain recv and acts on it.
    void kernel_control_record() noexcept;
    void kernel_rx_key_update(bool update_requested) noexcept;
    // Sends a KeyUpdate and installs the next TX key; false when it did not happen now.
    [[nodiscard]] bool kernel_tx_key_update() noexcept;
    // Ratchets one direction's secret (RFC 8446 §7.2) and puts the next key into the kernel;
    // false, with the link down, when that fails.
    [[nodiscard]] bool install_next_kernel_key(tls::KtlsDirection direction) noexcept;
    [[nodiscard]] bool key_update_due() const noexcept;
    void key_update_done() noexcept;
    void queue_ciphertext(buf::Chunk&& c) noexcept;
    void send_queued() noexcept;
    // Seals what is left of batch_ into pool buffers; false when the buffers ran out first.
    [[nodiscard]] bool seal_batch() noexcept;
    [[nodiscard]] bool batch_sealed() const noexcept;
    void seal_and_send() noexcept;
    // Counts the start of a wait for buffers (sealing or gathering); ends in rearm/seal_and_send.
    void waiting_for_buffers() noexcept;
    // Buffers may be back: go on sealing, or gathering a split record.
    void rearm() noexcept override;
    [[nodiscard]] bool rotation_due(uint64_t now_ns) const noexcept;
    void start_key_epoch(uint64_t now_ns) noexcept;
    void down(const char* reason, int err) noexcept;
    void send_close_notify() noexcept;

    Context& ctx_;
    SocketIo io_;
    const tls::TlsContext& tls_;
    TlsLinkOptions options_;
    LinkSink* sink_ = nullptr;
    Mode mode_ = Mode::Handshake;
    std::unique_ptr<tls::Handshake> handshake_;
    std::optional<tls::RecordLayer> records_;
    // Under kTLS on a kernel that can rekey: the current secrets, to derive the next keys.
    std::optional<tls::TrafficKeys> kernel_keys_;
    std::string identity_;
    std::string failure_;

    // Outgoing ciphertext (handshake bytes or sealed records) and what is being sent of it.
    buf::ChunkQueue tx_;
    static constexpr uint32_t kMaxIov = 64;
    iovec iov_[kMaxIov];
    uint32_t sending_bytes_ = 0;
    WriteBatch* batch_ = nullptr;  // the session's batch, released once its records went out
    uint32_t seal_iov_ = 0;        // where sealing of batch_ stopped for lack of buffers
    size_t seal_offset_ = 0;

    // Incoming: a record split across receive buffers is gathered here.
    buf::Chunk partial_;
    uint32_t partial_len_ = 0;
    // Received bytes held, in order, while no buffer is free to gather a split record.
    buf::ChunkQueue rx_stalled_;
    bool buffer_wait_ = false;  // a wait for buffers is under way (counted once)

    // kTLS switch-over: waits until no send or recv is in flight and input is at a record
    // boundary, then hands the keys (and sequence numbers) to the kernel.
    bool ktls_wanted_ = false;
    bool peer_key_update_ = false;
    bool peer_requested_update_ = false;  // the peer's KeyUpdate asked us to rotate too
    bool reconnect_requested_ = false;
    bool down_ = false;
    uint64_t key_epoch_ns_ = 0;
    uint64_t key_epoch_bytes_ = 0;
    uint64_t generation_at_start_ = 0;
};

}  // namespace ferry::tunnel
