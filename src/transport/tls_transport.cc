#include "ferry/transport/tls_transport.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "ferry/base/check.h"
#include "ferry/base/log.h"
#include "ferry/io/socket_io.h"
#include "ferry/proto/tunnel/frame.h"
#include "ferry/tls/alert.h"
#include "ferry/tls/ktls.h"

namespace ferry::transport {

namespace {

// Records never exceed one pool buffer, so a receiver with the same --buffer-size can always
// gather a split record into a single buffer and open it in place.
constexpr uint32_t kMaxOwnRecord = 16384;

}  // namespace

TlsTransport::TlsTransport(loop::Context& ctx, Metrics& metrics, std::unique_ptr<Transport> lower,
                           const tls::TlsContext& tls, const TlsOptions& options) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      owned_lower_(std::move(lower)),
      lower_(owned_lower_.get()),
      tls_(tls),
      options_(options),
      assembler_(ctx.nodes) {
    generation_at_start_ = tls.generation();
}

TlsTransport::TlsTransport(loop::Context& ctx, Metrics& metrics, Transport& lower,
                           const tls::TlsContext& tls, const TlsOptions& options) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      lower_(&lower),
      tls_(tls),
      options_(options),
      assembler_(ctx.nodes) {
    generation_at_start_ = tls.generation();
}

TlsTransport::~TlsTransport() {
    ctx_.buffer_waits.cancel(this);
    tx_.clear(ctx_.nodes);
    assembler_.clear();
    if (mode_ == Mode::Kernel) {
        metrics_.tunnel_ktls.add(-1);
    }
}

const char* TlsTransport::kind() const noexcept {
    switch (mode_) {
        case Mode::Handshake:
            return "tls-handshake";
        case Mode::User:
            return "tls";
        case Mode::Kernel:
            return "ktls";
    }
    return "tls";
}

uint32_t TlsTransport::capabilities() const noexcept {
    // We can follow a peer's KeyUpdate while our RX records are opened in user space, and under
    // kTLS only where the kernel takes a new RX key in place (Linux 6.14+, probed at run time).
    // Otherwise the peer must rotate by make-before-break reconnect: a KeyUpdate would leave our
    // kernel decrypting with the old key.
    if (mode_ == Mode::Kernel && !kernel_keys_) {
        return 0;
    }
    return proto::tunnel::kCapabilityKeyUpdate;
}

void TlsTransport::set_peer_capabilities(uint32_t caps) noexcept {
    peer_key_update_ = (caps & proto::tunnel::kCapabilityKeyUpdate) != 0;
}

void TlsTransport::start(TransportSink* sink) noexcept {
    sink_ = sink;
    lower_->start(this);
    if (!tls_.config().is_server && lower_->established()) {
        start_client_handshake();
    }
    // A client whose lower transport has a handshake of its own (a WebSocket upgrade) sends its
    // ClientHello once that is done. A server makes its OpenSSL state when the first bytes
    // arrive: a connection that never sends any costs none.
}

void TlsTransport::start_client_handshake() noexcept {
    handshake_ = std::make_unique<tls::Handshake>(tls_);
    handshake_input({});  // the ClientHello
}

void TlsTransport::on_transport_established() noexcept {
    if (!tls_.config().is_server && handshake_ == nullptr && mode_ == Mode::Handshake && !down_) {
        start_client_handshake();
    }
}

void TlsTransport::pause_reading() noexcept {
    upper_paused_ = true;
    update_reading();
}

void TlsTransport::resume_reading() noexcept {
    upper_paused_ = false;
    update_reading();
}

void TlsTransport::update_reading() noexcept {
    if (down_) {
        return;
    }
    const bool at_ktls_switch = ktls_wanted_ && assembler_.empty();
    const bool want = !rx_waiting_ && !upper_paused_ && !at_ktls_switch;
    if (want != reading_) {
        reading_ = want;
        if (want) {
            lower_->resume_reading();
        } else {
            lower_->pause_reading();
        }
    }
}

void TlsTransport::close() noexcept {
    if (!down_ && !lower_writing_ && tx_.empty()) {
        send_close_notify();
    }
    down_ = true;
    ctx_.buffer_waits.cancel(this);
    lower_->close();
}

void TlsTransport::shutdown_write() noexcept {
    if (down_) {
        return;
    }
    // Called once our last write is out (nothing queued): close_notify, then the FIN.
    if (mode_ != Mode::Handshake && !lower_writing_ && tx_.empty()) {
        send_close_notify();
    }
    lower_->shutdown_write();
}

void TlsTransport::send_close_notify() noexcept {
    // Ends our stream the TLS way, so the peer can tell a close from a cut connection. One small
    // non-blocking send straight on the socket, on the closing path with no send in flight; a
    // full socket buffer skips it (the peer then sees a close without close_notify). A framed
    // lower transport ends its own stream (its close handshake) instead.
    io::SocketIo* socket = lower_->raw_socket();
    if (socket == nullptr || socket->fd() < 0) {
        return;
    }
    if (mode_ == Mode::Kernel) {
        (void)tls::ktls_send_close_notify(socket->fd(), MSG_DONTWAIT);
    } else if (mode_ == Mode::User) {
        std::byte record[tls::kAlertRecordSize];
        const size_t n = records_->seal_alert(tls::AlertDescription::CloseNotify, record);
        (void)::send(socket->fd(), record, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

void TlsTransport::down(const char* reason, int err) noexcept {
    ctx_.buffer_waits.cancel(this);
    if (!down_) {
        down_ = true;
        sink_->on_transport_down(reason, err);
    }
    lower_->close();
}

// ---- handshake --------------------------------------------------------------------------------

void TlsTransport::handshake_input(std::span<const std::byte> bytes) noexcept {
    if (handshake_ == nullptr) {
        handshake_ = std::make_unique<tls::Handshake>(tls_);
    }
    if (!bytes.empty()) {
        handshake_->feed(bytes);
    }
    tls::HandshakeStep step = handshake_->step();
    while (handshake_->pending_output() > 0) {
        buf::Chunk out = ctx_.alloc_tunnel_chunk();
        if (out.empty()) {
            down("out of buffers during the TLS handshake", 0);
            return;
        }
        out.set_size(static_cast<uint32_t>(handshake_->take_output(out.span())));
        tx_.push(ctx_.nodes, std::move(out));
    }
    send_queued();
    if (step == tls::HandshakeStep::Failed) {
        metrics_.tls_handshake_failures.add();
        failure_ = handshake_->failure_reason();
        // Anyone can provoke this: the owner logs it with the peer's address, rate-limited.
        FERRY_LOG(Debug, "tunnel TLS handshake refused: %s", failure_);
        // The alert (if any) is queued above; give it a moment by closing after the send.
        down(failure_.c_str(), 0);
        return;
    }
    if (step == tls::HandshakeStep::Done) {
        handshake_done();
    }
}

void TlsTransport::handshake_done() noexcept {
    metrics_.tls_handshakes.add();
    records_.emplace(handshake_->keys());
    if (tls_.config().foreign_server) {
        records_->drop_tickets();  // before the bytes that came with the handshake are opened
    }
    identity_ = handshake_->peer_identity();
    std::span<const std::byte> leftover = handshake_->leftover_input();
    if (!leftover.empty()) {
        // Records that arrived with the peer's Finished: rare and small, copied once.
        buf::Chunk early = ctx_.alloc_tunnel_chunk();
        if (early.empty() || leftover.size() > early.capacity()) {
            down("out of buffers after the TLS handshake", 0);
            return;
        }
        std::memcpy(early.data(), leftover.data(), leftover.size());
        early.set_size(static_cast<uint32_t>(leftover.size()));
        metrics_.bytes_copied.add(leftover.size());
        assembler_.push(std::move(early));
    }
    handshake_.reset();
    sealer_ = std::make_unique<tls::RecordSealer>();
    mode_ = Mode::User;
    start_key_epoch(ctx_.now_ns);
    // The kernel can only take over a socket: never a TLS stream framed inside another protocol.
    const bool kernel =
        options_.ktls != KtlsMode::Off && lower_->raw_socket() != nullptr && tls::ktls_supported();
    FERRY_LOG(Info, "tunnel TLS 1.3 established with '%s' (%s)%s", identity_,
              tls::cipher_name(records_->cipher()),
              kernel ? "; moving keys into the kernel" : "; user-space records");
    if (!kernel && options_.ktls == KtlsMode::On) {
        FERRY_LOG(Error, "--ktls=on but this tunnel connection cannot use kernel TLS");
        down("kTLS unavailable", 0);
        return;
    }
    ktls_wanted_ = kernel;
    open_records();
    if (down_) {
        return;
    }
    if (kernel) {
        update_reading();
        try_install_ktls();
        return;
    }
    sink_->on_transport_established();
}

void TlsTransport::try_install_ktls() noexcept {
    io::SocketIo* socket = lower_->raw_socket();
    if (!ktls_wanted_ || down_ || lower_writing_ || !tx_.empty() || socket->recv_in_flight() ||
        !assembler_.empty()) {
        return;
    }
    ktls_wanted_ = false;
    absl::Status st = tls::install_ktls(socket->fd(), records_->tx_keys(), records_->rx_keys());
    if (st.ok()) {
        mode_ = Mode::Kernel;
        metrics_.tunnel_ktls.add(1);
        if (tls::ktls_rekey_supported()) {
            // Kept only to derive the next generation on KeyUpdate; the kernel has the keys.
            kernel_keys_.emplace();
            kernel_keys_->cipher = records_->cipher();
            kernel_keys_->tx = records_->tx_keys();
            kernel_keys_->rx = records_->rx_keys();
        }
        // Ours are wiped (DirectionKeys' destructor).
        records_.reset();
        socket->set_zerocopy(false);  // SEND_ZC on a kTLS socket fails with EOPNOTSUPP
        FERRY_LOG(Info, "kTLS on: the kernel now encrypts and decrypts this tunnel connection%s",
                  kernel_keys_ ? " (in-place rekey)" : "");
    } else if (options_.ktls == KtlsMode::On) {
        FERRY_LOG(Error, "--ktls=on but installing the keys failed: %s", st.message());
        down("kTLS install failed", 0);
        return;
    } else {
        FERRY_LOG(Warn, "kTLS install failed (%s); staying with user-space records", st.message());
    }
    update_reading();
    sink_->on_transport_established();
}

void TlsTransport::on_transport_read_stopped() noexcept { try_install_ktls(); }

// ---- input ------------------------------------------------------------------------------------

void TlsTransport::on_transport_read(buf::Chunk&& bytes) noexcept {
    switch (mode_) {
        case Mode::Handshake:
            handshake_input(bytes.span());
            return;
        case Mode::User:
            assembler_.push(std::move(bytes));
            open_records();
            return;
        case Mode::Kernel:
            sink_->on_transport_read(std::move(bytes));
            return;
    }
}

void TlsTransport::open_records() noexcept {
    while (!down_ && mode_ == Mode::User) {
        tls::RecordAssembler::Next next =
            assembler_.next([this] { return ctx_.alloc_tunnel_chunk(); });
        metrics_.bytes_copied.add(next.copied);
        switch (next.status) {
            case tls::RecordAssembler::Status::Record:
                if (!open_record(next.record)) {
                    return;
                }
                continue;
            case tls::RecordAssembler::Status::NeedMore:
                if (rx_waiting_) {
                    rx_waiting_ = false;
                    buffer_wait_ = writer_waiting_ && !sealer_->done();
                }
                update_reading();
                if (ktls_wanted_) {
                    try_install_ktls();
                }
                return;
            case tls::RecordAssembler::Status::NeedBuffer:
                // Both pools are dry: hold what arrived and stop reading until buffers come back,
                // rather than drop the connection and its streams.
                rx_waiting_ = true;
                waiting_for_buffers();
                update_reading();
                ctx_.buffer_waits.park(this);
                return;
            case tls::RecordAssembler::Status::TooLarge:
                down(
                    "TLS record larger than a receive buffer (use the same --buffer-size on both "
                    "ends)",
                    0);
                return;
        }
    }
}

bool TlsTransport::open_record(buf::Chunk& record) noexcept {
    tls::OpenResult r = records_->open(record.span());
    switch (r.status) {
        case tls::OpenStatus::Data:
            if (!r.plaintext.empty()) {
                // Decrypted in place: the layer above gets a slice of the very receive buffer.
                auto at = static_cast<uint32_t>(r.plaintext.data() - record.data());
                sink_->on_transport_read(
                    record.share(at, static_cast<uint32_t>(r.plaintext.size())));
            }
            return !down_;
        case tls::OpenStatus::KeyUpdate:
            metrics_.key_updates_received.add();
            if (r.update_requested) {
                peer_requested_update_ = true;
            }
            return true;
        case tls::OpenStatus::Skipped:
            return true;
        case tls::OpenStatus::Eof:
            down("peer sent close_notify", 0);
            return false;
        case tls::OpenStatus::NeedMore:
        case tls::OpenStatus::Error:
            break;
    }
    FERRY_LOG(Warn, "tunnel TLS: %s", r.error != nullptr ? r.error : "malformed record");
    down(r.error != nullptr ? r.error : "malformed TLS record", 0);
    return false;
}

void TlsTransport::on_transport_down(const char* reason, int err) noexcept {
    if (err != 0) {
        down(reason, err);
        return;
    }
    down(mode_ == Mode::Handshake ? "peer closed the connection during the TLS handshake"
                                  : "peer closed the tunnel connection without close_notify",
         0);
}

bool TlsTransport::on_transport_recv_error(int err) noexcept {
    // Under kTLS RX a plain recv fails with EIO when the next record is not application data;
    // EKEYEXPIRED would mean the kernel waits for a key after a KeyUpdate we never read.
    if (mode_ != Mode::Kernel || (err != EIO && err != EKEYEXPIRED)) {
        return false;
    }
    kernel_control_record();
    return true;
}

void TlsTransport::kernel_control_record() noexcept {
    // Read the record with its type. A pool buffer, not a small one: the kernel truncates a
    // control record to the buffer, and should data come first it is delivered, not dropped.
    buf::Chunk c = ctx_.alloc_tunnel_chunk();
    if (c.empty()) {
        down("out of buffers reading a kTLS control record", 0);
        return;
    }
    tls::KtlsRecvResult r = tls::ktls_recv(lower_->raw_socket()->fd(), c.span(), MSG_DONTWAIT);
    if (r.err != 0) {
        down(r.err == EKEYEXPIRED ? "kTLS RX is waiting for a key after an unseen KeyUpdate"
                                  : "recv of a kTLS control record failed",
             r.err);
        return;
    }
    switch (r.record.kind) {
        case tls::KtlsRecordKind::Data:
            if (r.bytes == 0) {
                down("peer closed the tunnel connection without close_notify", 0);
                return;
            }
            c.set_size(static_cast<uint32_t>(r.bytes));
            metrics_.tunnel_bytes_in.add(r.bytes);
            sink_->on_transport_read(std::move(c));
            return;
        case tls::KtlsRecordKind::CloseNotify:
            down("peer sent close_notify", 0);
            return;
        case tls::KtlsRecordKind::Alert:
            FERRY_LOG(Warn, "tunnel TLS: peer alert %s", tls::alert_name(r.record.alert));
            down("peer sent a TLS alert", 0);
            return;
        case tls::KtlsRecordKind::KeyUpdate:
            kernel_rx_key_update(r.record.update_requested);
            return;
        case tls::KtlsRecordKind::Malformed:
            break;
    }
    down("malformed TLS control record under kTLS", 0);
}

void TlsTransport::kernel_rx_key_update(bool update_requested) noexcept {
    metrics_.key_updates_received.add();
    if (!kernel_keys_) {
        down("peer sent a KeyUpdate this kernel cannot follow", 0);
        return;
    }
    // The kernel holds every later record (reads fail with EKEYEXPIRED) until the next RX key
    // is in: install it now, before the recv is re-armed.
    if (!install_next_kernel_key(tls::KtlsDirection::Rx)) {
        return;
    }
    if (update_requested) {
        peer_requested_update_ = true;
    }
}

bool TlsTransport::kernel_tx_key_update() noexcept {
    // No send is in flight (write() holds the only batch), so the KeyUpdate lands between the
    // bytes already sent under the old key and the ones sent next under the new key. A
    // non-blocking sendmsg of 5 bytes: if the socket buffer is full, rotate on the next write.
    const int err = tls::ktls_send_key_update(lower_->raw_socket()->fd(), false, MSG_DONTWAIT);
    if (err == EAGAIN || err == EWOULDBLOCK) {
        return false;
    }
    if (err != 0) {
        down("sending a KeyUpdate failed", err);
        return false;
    }
    // The peer switches keys at the KeyUpdate just sent: failing here ends the connection.
    return install_next_kernel_key(tls::KtlsDirection::Tx);
}

bool TlsTransport::install_next_kernel_key(tls::KtlsDirection direction) noexcept {
    const bool tx = direction == tls::KtlsDirection::Tx;
    tls::DirectionKeys& current = tx ? kernel_keys_->tx : kernel_keys_->rx;
    tls::DirectionKeys next;
    if (!tls::next_direction_keys(current, &next)) {
        down(tx ? "deriving the next TLS TX key failed" : "deriving the next TLS RX key failed", 0);
        return false;
    }
    if (absl::Status st = tls::ktls_rekey(lower_->raw_socket()->fd(), direction, next); !st.ok()) {
        FERRY_LOG(Error, "tunnel kTLS: %s", st.message());
        down(tx ? "kTLS TX rekey failed" : "kTLS RX rekey failed", 0);
        return false;
    }
    current = next;
    return true;
}

// ---- output -----------------------------------------------------------------------------------

void TlsTransport::send_queued() noexcept {
    if (lower_writing_ || tx_.empty() || down_) {
        return;
    }
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (buf::ChunkNode* node = tx_.head(); node != nullptr && n < kMaxIov; node = node->next) {
        out_[n++] = iovec{node->chunk.data(), node->chunk.size()};
        bytes += node->chunk.size();
    }
    sending_bytes_ = bytes;
    lower_writing_ = true;
    passthrough_write_ = false;
    lower_->write(out_, n, bytes);
}

void TlsTransport::seal_and_send() noexcept {
    if (writer_waiting_ && !sealer_->done()) {
        key_epoch_bytes_ += sealer_->seal(
            *records_, kMaxOwnRecord, [this] { return ctx_.alloc_tunnel_chunk(); },
            [this](buf::Chunk&& sealed) { tx_.push(ctx_.nodes, std::move(sealed)); });
        if (!sealer_->done()) {
            // Both pools are dry. Our own queued records return buffers as they go out; with
            // none queued, wait for other sockets to return some instead of dropping the
            // connection.
            waiting_for_buffers();
            if (tx_.empty() && !lower_writing_) {
                ctx_.buffer_waits.park(this);
            }
        } else if (!rx_waiting_) {
            buffer_wait_ = false;
        }
    }
    send_queued();
}

void TlsTransport::waiting_for_buffers() noexcept {
    if (!buffer_wait_) {
        buffer_wait_ = true;
        metrics_.tls_buffer_waits.add();
    }
}

void TlsTransport::retry_after_buffer_wait() noexcept {
    if (down_) {
        return;
    }
    if (writer_waiting_ && !sealer_->done()) {
        seal_and_send();
    }
    if (rx_waiting_) {
        open_records();
    }
}

bool TlsTransport::key_update_due() const noexcept {
    return (peer_requested_update_ || (peer_key_update_ && rotation_due(ctx_.now_ns))) &&
           tls_.generation() == generation_at_start_;
}

void TlsTransport::key_update_done() noexcept {
    metrics_.key_updates_sent.add();
    peer_requested_update_ = false;
    start_key_epoch(ctx_.now_ns);
}

void TlsTransport::write(iovec* iov, uint32_t count, uint64_t bytes) noexcept {
    writer_waiting_ = true;
    if (mode_ == Mode::Kernel) {
        if (kernel_keys_ && key_update_due() && !lower_writing_ && kernel_tx_key_update()) {
            key_update_done();
        }
        if (down_) {
            return;
        }
        // The kernel seals: the writer's iovecs go down as they are.
        key_epoch_bytes_ += bytes;
        lower_writing_ = true;
        passthrough_write_ = true;
        lower_->write(iov, count, bytes);
        return;
    }
    if (key_update_due()) {
        // TLS 1.3 KeyUpdate (RFC 8446 §4.6.3): the record goes out under the old key, everything
        // after it under the next one. No connection, stream or byte is disturbed.
        buf::Chunk ku = ctx_.alloc_tunnel_chunk();
        if (!ku.empty()) {
            ku.set_size(static_cast<uint32_t>(records_->update_tx_key(ku.span())));
            tx_.push(ctx_.nodes, std::move(ku));
            key_update_done();
        }
    }
    sealer_->start(iov, count);
    seal_and_send();
}

void TlsTransport::on_transport_written() noexcept {
    lower_writing_ = false;
    if (passthrough_write_) {
        passthrough_write_ = false;
        writer_waiting_ = false;
        sink_->on_transport_written();
        return;
    }
    if (sending_bytes_ > 0) {
        tx_.consume(ctx_.nodes, sending_bytes_);
        sending_bytes_ = 0;
    }
    if (writer_waiting_ && !sealer_->done()) {
        seal_and_send();  // our records freed buffers: seal what is left of the batch
    }
    if (!tx_.empty()) {
        send_queued();
        return;
    }
    if (writer_waiting_ && sealer_->done()) {
        writer_waiting_ = false;
        sink_->on_transport_written();
    }
    try_install_ktls();
}

void TlsTransport::on_transport_quiescent() noexcept {
    tx_.clear(ctx_.nodes);
    assembler_.clear();
    lower_writing_ = false;
    if (writer_waiting_) {
        writer_waiting_ = false;
        sink_->on_transport_written();
    }
    sink_->on_transport_quiescent();
}

// ---- rotation ---------------------------------------------------------------------------------

void TlsTransport::rotate_idle_key(uint64_t now_ns) noexcept {
    // Keys rotate when a write starts; a connection with nothing to write would keep its key for
    // ever, so an idle one whose key is due sends the KeyUpdate on its own.
    const bool due =
        peer_requested_update_ || (peer_key_update_ && options_.rekey_interval_ns != 0 &&
                                   now_ns - key_epoch_ns_ >= options_.rekey_interval_ns);
    if (!due || writer_waiting_ || lower_writing_ || !tx_.empty() ||
        tls_.generation() != generation_at_start_) {
        return;
    }
    if (mode_ == Mode::Kernel) {
        if (kernel_keys_ && kernel_tx_key_update()) {
            key_update_done();
        }
        return;
    }
    buf::Chunk ku = ctx_.alloc_tunnel_chunk();
    if (ku.empty()) {
        return;  // no buffer: the next tick tries again
    }
    ku.set_size(static_cast<uint32_t>(records_->update_tx_key(ku.span())));
    tx_.push(ctx_.nodes, std::move(ku));
    key_update_done();
    send_queued();
}

void TlsTransport::start_key_epoch(uint64_t now_ns) noexcept {
    key_epoch_ns_ = now_ns;
    key_epoch_bytes_ = 0;
}

bool TlsTransport::rotation_due(uint64_t now_ns) const noexcept {
    return (options_.rekey_bytes != 0 && key_epoch_bytes_ >= options_.rekey_bytes) ||
           (options_.rekey_interval_ns != 0 &&
            now_ns - key_epoch_ns_ >= options_.rekey_interval_ns);
}

void TlsTransport::tick(uint64_t now_ns) noexcept {
    if (mode_ == Mode::Handshake || down_) {
        return;
    }
    rotate_idle_key(now_ns);
    metrics_.key_bytes.set(static_cast<int64_t>(key_epoch_bytes_));
    metrics_.key_age_ms.set(static_cast<int64_t>((now_ns - key_epoch_ns_) / 1'000'000));
    bool certs_changed = tls_.generation() != generation_at_start_;
    bool in_place = peer_key_update_ && (mode_ == Mode::User || kernel_keys_);
    if ((rotation_due(now_ns) && !in_place) || certs_changed) {
        // New certificates can only reach the peer in a new handshake, and kTLS before Linux
        // 6.14 cannot take a new key. Either way: a fresh connection, then drain this one.
        if (!reconnect_requested_) {
            reconnect_requested_ = true;
            metrics_.rotations_reconnect.add();
            sink_->on_transport_rotation_due(certs_changed ? "certificates were reloaded"
                                                           : "key rotation due (reconnect)");
        }
    }
}

}  // namespace ferry::transport
