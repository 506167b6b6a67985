// TlsTransport: the armored tunnel transport — mutual TLS 1.3 over any lower Transport.
//
// The handshake runs in OpenSSL over memory BIOs (tls::Handshake); the lower transport moves its
// bytes. Then, when the lower transport is a raw TCP socket and the kernel offers it, the kernel
// takes the traffic keys (kTLS: TLS_TX/TLS_RX, plain sends, no SEND_ZC) and this layer passes
// bytes through; otherwise it protects records itself: outgoing plaintext is sealed straight from
// the writer's slices into pool buffers (tls::RecordSealer), incoming records are found by
// tls::RecordAssembler and opened in place, handed up as slices of the receive buffer. Only a
// record that straddles two receive buffers is copied (counted in ferry_bytes_copied_total).
//
// Rotation: every rekey_bytes / rekey_interval the TX key moves on — by TLS 1.3 KeyUpdate when
// the peer said it can take one (sealed here in user space; under kTLS sent as a handshake
// record and followed by the next TX key, where the kernel can rekey: Linux 6.14+), else (kTLS
// without kernel rekey, or changed certificates) by asking the owner for a make-before-break
// reconnect. A peer's KeyUpdate under kTLS arrives as a control record; the next RX key goes
// into the kernel before reading resumes.
//
// When both pools are dry, sealing and record gathering wait (parked on the shard's buffer wait
// list, reading paused) instead of dropping the connection.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ferry/io/buffer_wait.h"
#include "ferry/loop/context.h"
#include "ferry/tls/handshake.h"
#include "ferry/tls/ktls.h"
#include "ferry/tls/record_assembler.h"
#include "ferry/tls/record_layer.h"
#include "ferry/tls/record_sealer.h"
#include "ferry/tls/tls_context.h"
#include "ferry/transport/metrics.h"
#include "ferry/transport/transport.h"

namespace ferry::transport {

enum class KtlsMode : uint8_t { Auto, On, Off };

struct TlsOptions {
    KtlsMode ktls = KtlsMode::Auto;
    uint64_t rekey_bytes = 0;        // 0 = no byte limit
    uint64_t rekey_interval_ns = 0;  // 0 = no age limit
};

class TlsTransport final : public Transport, private TransportSink, private io::BufferWaiter {
  public:
    // Runs TLS over `lower` (owned; started by start()). `tls` and `metrics` outlive it.
    TlsTransport(loop::Context& ctx, Metrics& metrics, std::unique_ptr<Transport> lower,
                 const tls::TlsContext& tls, const TlsOptions& options) noexcept;
    // Runs TLS over `lower`, which the caller owns and keeps until on_transport_quiescent() (a
    // client connection's socket that lives inside its leg).
    TlsTransport(loop::Context& ctx, Metrics& metrics, Transport& lower, const tls::TlsContext& tls,
                 const TlsOptions& options) noexcept;
    ~TlsTransport() override;

    void start(TransportSink* sink) noexcept override;
    void write(iovec* iov, uint32_t count, uint64_t bytes) noexcept override;
    void pause_reading() noexcept override;
    void resume_reading() noexcept override;
    void close() noexcept override;
    void shutdown_write() noexcept override;
    [[nodiscard]] const char* kind() const noexcept override;
    [[nodiscard]] bool established() const noexcept override { return mode_ != Mode::Handshake; }
    [[nodiscard]] uint32_t capabilities() const noexcept override;
    void set_peer_capabilities(uint32_t caps) noexcept override;
    void tick(uint64_t now_ns) noexcept override;
    [[nodiscard]] std::string_view peer_identity() const noexcept override { return identity_; }

  private:
    enum class Mode : uint8_t { Handshake, User, Kernel };

    // From the lower transport.
    void on_transport_read(buf::Chunk&& bytes) noexcept override;
    void on_transport_written() noexcept override;
    void on_transport_down(const char* reason, int err) noexcept override;
    void on_transport_quiescent() noexcept override;
    bool on_transport_recv_error(int err) noexcept override;
    void on_transport_read_stopped() noexcept override;
    // The lower transport finished its own handshake: a client sends its ClientHello now.
    void on_transport_established() noexcept override;

    void start_client_handshake() noexcept;

    void handshake_input(std::span<const std::byte> bytes) noexcept;
    void handshake_done() noexcept;
    // Opens every whole record the assembler has; waits for buffers when a split record needs one.
    void open_records() noexcept;
    // Opens `record` in place; false when the transport went down.
    [[nodiscard]] bool open_record(buf::Chunk& record) noexcept;
    // Reads from below exactly when something wants bytes: not while waiting for a buffer, not
    // while the layer above paused, not at a record boundary while the keys go to the kernel.
    void update_reading() noexcept;
    void try_install_ktls() noexcept;
    // kTLS: reads the non-data record that failed a plain recv and acts on it.
    void kernel_control_record() noexcept;
    void kernel_rx_key_update(bool update_requested) noexcept;
    // Sends a KeyUpdate and installs the next TX key; false when it did not happen now.
    [[nodiscard]] bool kernel_tx_key_update() noexcept;
    // Ratchets one direction's secret (RFC 8446 §7.2) and puts the next key into the kernel;
    // false, with the transport down, when that fails.
    [[nodiscard]] bool install_next_kernel_key(tls::KtlsDirection direction) noexcept;
    [[nodiscard]] bool key_update_due() const noexcept;
    void key_update_done() noexcept;
    // A due key on a connection with no write to carry the KeyUpdate: send it alone.
    void rotate_idle_key(uint64_t now_ns) noexcept;
    void send_queued() noexcept;
    void seal_and_send() noexcept;
    // Counts the start of a wait for buffers (sealing or gathering); one wait, however many
    // retries it takes.
    void waiting_for_buffers() noexcept;
    void retry_after_buffer_wait() noexcept override;
    [[nodiscard]] bool rotation_due(uint64_t now_ns) const noexcept;
    void start_key_epoch(uint64_t now_ns) noexcept;
    void down(const char* reason, int err) noexcept;
    void send_close_notify() noexcept;

    loop::Context& ctx_;
    Metrics& metrics_;
    std::unique_ptr<Transport> owned_lower_;  // null when the lower transport is borrowed
    Transport* lower_;
    const tls::TlsContext& tls_;
    TlsOptions options_;
    TransportSink* sink_ = nullptr;
    Mode mode_ = Mode::Handshake;
    std::unique_ptr<tls::Handshake> handshake_;
    std::optional<tls::RecordLayer> records_;
    // Under kTLS on a kernel that can rekey: the current secrets, to derive the next keys.
    std::optional<tls::TrafficKeys> kernel_keys_;
    std::string identity_;
    std::string failure_;

    // Outgoing ciphertext (handshake bytes or sealed records) and the lower write carrying it.
    buf::ChunkQueue tx_;
    static constexpr uint32_t kMaxIov = 64;
    iovec out_[kMaxIov];
    uint64_t sending_bytes_ = 0;
    bool lower_writing_ = false;
    bool passthrough_write_ = false;  // kTLS: the writer's iovecs themselves are with the lower
    bool writer_waiting_ = false;     // the writer's write is not fully sealed and sent yet
    // User-space records only (made once the handshake is done: a connection that never
    // authenticates never pays for it).
    std::unique_ptr<tls::RecordSealer> sealer_;

    // Incoming ciphertext, cut into whole records.
    tls::RecordAssembler assembler_;
    bool rx_waiting_ = false;    // a split record waits for a buffer to be gathered into
    bool buffer_wait_ = false;   // a wait for buffers is under way (counted once)
    bool reading_ = true;        // what we last asked of the lower transport
    bool upper_paused_ = false;  // the layer above asked us to stop reading

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

}  // namespace ferry::transport
