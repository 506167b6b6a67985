#include "ferry/tunnel/tls_link.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "ferry/base/check.h"
#include "ferry/base/log.h"
#include "ferry/proto/tunnel/frame.h"
#include "ferry/tls/alert.h"
#include "ferry/tls/ktls.h"

namespace ferry::tunnel {

namespace {

// Records never exceed one pool buffer, so a receiver with the same --buffer-size can always
// gather a split record into a single buffer and open it in place.
constexpr uint32_t kMaxOwnRecord = 16384;

}  // namespace

TlsLink::TlsLink(Context& ctx, int fd, const tls::TlsContext& tls,
                 const TlsLinkOptions& options) noexcept
    : ctx_(ctx), io_(ctx, this, &ctx.tunnel_bufs), tls_(tls), options_(options) {
    io_.attach(fd);
    generation_at_start_ = tls.generation();
}

TlsLink::~TlsLink() {
    ctx_.unpark_starved(this);
    tx_.clear(ctx_.nodes);
    rx_stalled_.clear(ctx_.nodes);
    if (mode_ == Mode::Kernel) {
        ctx_.metrics.tunnel_ktls.add(-1);
    }
}

const char* TlsLink::kind() const noexcept {
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

uint32_t TlsLink::capabilities() const noexcept {
    // We can follow a peer's KeyUpdate while our RX records are opened in user space, and under
    // kTLS only where the kernel takes a new RX key in place (Linux 6.14+, probed at run time).
    // Otherwise the peer must rotate by make-before-break reconnect: a KeyUpdate would leave our
    // kernel decrypting with the old key.
    if (mode_ == Mode::Kernel && !kernel_keys_) {
        return 0;
    }
    return proto::tunnel::kCapabilityKeyUpdate;
}

void TlsLink::set_peer_capabilities(uint32_t caps) noexcept {
    peer_key_update_ = (caps & proto::tunnel::kCapabilityKeyUpdate) != 0;
}

void TlsLink::start(LinkSink* sink) noexcept {
    sink_ = sink;
    handshake_ = std::make_unique<tls::Handshake>(tls_);
    io_.start_reading();
    if (!handshake_->is_server()) {
        handshake_input({});  // the ClientHello
    }
}

void TlsLink::close() noexcept {
    if (!down_ && !io_.sending() && tx_.empty()) {
        send_close_notify();
    }
    down_ = true;
    io_.close();
}

void TlsLink::send_close_notify() noexcept {
    // Ends our stream the TLS way, so the peer can tell a close from a cut connection. One small
    // non-blocking send straight on the socket, on the closing path with no ring send in flight;
    // a full socket buffer skips it (the peer then sees a close without close_notify).
    if (mode_ == Mode::Kernel) {
        (void)tls::ktls_send_close_notify(io_.fd(), MSG_DONTWAIT);
    } else if (mode_ == Mode::User) {
        std::byte record[tls::kAlertRecordSize];
        const size_t n = records_->seal_alert(tls::AlertDescription::CloseNotify, record);
        (void)::send(io_.fd(), record, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

void TlsLink::down(const char* reason, int err) noexcept {
    ctx_.unpark_starved(this);
    if (!down_) {
        down_ = true;
        sink_->on_link_down(reason, err);
    }
    io_.close();
}

// ---- handshake --------------------------------------------------------------------------------

void TlsLink::handshake_input(std::span<const std::byte> bytes) noexcept {
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
        queue_ciphertext(std::move(out));
    }
    send_queued();
    if (step == tls::HandshakeStep::Failed) {
        ctx_.metrics.tls_handshake_failures.add();
        failure_ = handshake_->failure_reason();
        FERRY_LOG(Warn, "tunnel TLS handshake refused: %s", failure_);
        // The alert (if any) is queued above; give it a moment by closing after the send.
        down(failure_.c_str(), 0);
        return;
    }
    if (step == tls::HandshakeStep::Done) {
        handshake_done();
    }
}

void TlsLink::handshake_done() noexcept {
    ctx_.metrics.tls_handshakes.add();
    records_.emplace(handshake_->keys());
    identity_ = handshake_->peer_identity();
    std::span<const std::byte> leftover = handshake_->leftover_input();
    buf::Chunk early;
    if (!leftover.empty()) {
        // Records that arrived with the peer's Finished: rare and small, copied once.
        early = ctx_.alloc_tunnel_chunk();
        if (early.empty() || leftover.size() > early.capacity()) {
            down("out of buffers after the TLS handshake", 0);
            return;
        }
        std::memcpy(early.data(), leftover.data(), leftover.size());
        early.set_size(static_cast<uint32_t>(leftover.size()));
        ctx_.metrics.bytes_copied.add(leftover.size());
    }
    handshake_.reset();
    mode_ = Mode::User;
    start_key_epoch(ctx_.now_ns);
    bool kernel = options_.ktls != KtlsMode::Off && tls::ktls_supported();
    FERRY_LOG(Info, "tunnel TLS 1.3 established with '%s' (%s)%s", identity_,
              tls::cipher_name(records_->cipher()),
              kernel ? "; moving keys into the kernel" : "; user-space records");
    if (!early.empty()) {
        user_input(std::move(early));
        if (down_) {
            return;
        }
    }
    if (kernel) {
        ktls_wanted_ = true;
        if (partial_len_ == 0) {
            io_.pause_reading();
        }
        try_install_ktls();
        return;
    }
    sink_->on_link_established();
}

void TlsLink::try_install_ktls() noexcept {
    if (!ktls_wanted_ || down_ || io_.sending() || !tx_.empty() || io_.recv_in_flight() ||
        partial_len_ != 0 || !rx_stalled_.empty()) {
        return;
    }
    ktls_wanted_ = false;
    absl::Status st = tls::install_ktls(io_.fd(), records_->tx_keys(), records_->rx_keys());
    if (st.ok()) {
        mode_ = Mode::Kernel;
        ctx_.metrics.tunnel_ktls.add(1);
        if (tls::ktls_rekey_supported()) {
            // Kept only to derive the next generation on KeyUpdate; the kernel has the keys.
            kernel_keys_.emplace();
            kernel_keys_->cipher = records_->cipher();
            kernel_keys_->tx = records_->tx_keys();
            kernel_keys_->rx = records_->rx_keys();
        }
        // Ours are wiped (DirectionKeys' destructor).
        records_.reset();
        io_.set_zerocopy(false);  // SEND_ZC on a kTLS socket fails with EOPNOTSUPP
        FERRY_LOG(Info, "kTLS on: the kernel now encrypts and decrypts this tunnel connection%s",
                  kernel_keys_ ? " (in-place rekey)" : "");
    } else if (options_.ktls == KtlsMode::On) {
        FERRY_LOG(Error, "--ktls=on but installing the keys failed: %s", st.message());
        down("kTLS install failed", 0);
        return;
    } else {
        FERRY_LOG(Warn, "kTLS install failed (%s); staying with user-space records", st.message());
    }
    io_.start_reading();
    sink_->on_link_established();
}

void TlsLink::on_socket_recv_stopped() noexcept { try_install_ktls(); }

// ---- input ------------------------------------------------------------------------------------

void TlsLink::on_socket_data(buf::Chunk&& bytes) noexcept {
    ctx_.metrics.tunnel_bytes_in.add(bytes.size());
    switch (mode_) {
        case Mode::Handshake:
            handshake_input(bytes.span());
            return;
        case Mode::User:
            user_input(std::move(bytes));
            return;
        case Mode::Kernel:
            sink_->on_link_read(std::move(bytes));
            return;
    }
}

void TlsLink::user_input(buf::Chunk&& c) noexcept {
    if (!rx_stalled_.empty()) {
        // Waiting for a buffer to gather a split record: keep later bytes in order behind it.
        rx_stalled_.push(ctx_.nodes, std::move(c));
        return;
    }
    uint32_t offset = 0;
    const uint32_t len = c.size();
    if (partial_len_ > 0) {
        // Finish the record that started in an earlier buffer.
        for (;;) {
            size_t need = tls::record_size({partial_.data(), partial_len_});
            if (need == 0) {
                need = tls::kRecordHeaderLen;
            }
            if (need > partial_.capacity()) {
                down(
                    "TLS record larger than a receive buffer (use the same --buffer-size on both "
                    "ends)",
                    0);
                return;
            }
            uint32_t take =
                std::min<uint32_t>(static_cast<uint32_t>(need) - partial_len_, len - offset);
            std::memcpy(partial_.data() + partial_len_, c.data() + offset, take);
            ctx_.metrics.bytes_copied.add(take);
            partial_len_ += take;
            offset += take;
            if (partial_len_ == need && need > tls::kRecordHeaderLen) {
                partial_.set_size(partial_len_);
                buf::Chunk whole = std::move(partial_);
                partial_len_ = 0;
                if (!open_record(whole, 0, static_cast<uint32_t>(need))) {
                    return;
                }
                break;
            }
            if (offset == len) {
                return;
            }
        }
    }
    while (offset < len) {
        std::span<const std::byte> rest(c.data() + offset, len - offset);
        size_t size = tls::record_size(rest);
        if (size == 0 || size > rest.size()) {
            // The record continues in the next buffer: gather it (the one copy of this path).
            partial_ = ctx_.alloc_tunnel_chunk();
            if (partial_.empty()) {
                // Both pools are dry: hold the rest (and what still arrives) and stop reading
                // until buffers come back, rather than drop the connection and its streams.
                rx_stalled_.push(ctx_.nodes, c.share(offset, len - offset));
                waiting_for_buffers();
                io_.pause_reading();
                ctx_.park_starved(this);
                return;
            }
            std::memcpy(partial_.data(), rest.data(), rest.size());
            ctx_.metrics.bytes_copied.add(rest.size());
            partial_len_ = static_cast<uint32_t>(rest.size());
            break;
        }
        if (!open_record(c, offset, static_cast<uint32_t>(size))) {
            return;
        }
        offset += static_cast<uint32_t>(size);
    }
    if (ktls_wanted_ && partial_len_ == 0 && io_.reading()) {
        io_.pause_reading();
    }
}

bool TlsLink::open_record(buf::Chunk& chunk, uint32_t offset, uint32_t size) noexcept {
    tls::OpenResult r = records_->open({chunk.data() + offset, size});
    switch (r.status) {
        case tls::OpenStatus::Data:
            if (!r.plaintext.empty()) {
                // Decrypted in place: the session gets a slice of the very receive buffer.
                auto at = static_cast<uint32_t>(r.plaintext.data() - chunk.data());
                sink_->on_link_read(chunk.share(at, static_cast<uint32_t>(r.plaintext.size())));
            }
            return !down_;
        case tls::OpenStatus::KeyUpdate:
            ctx_.metrics.key_updates_received.add();
            if (r.update_requested) {
                peer_requested_update_ = true;
            }
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

void TlsLink::on_socket_eof() noexcept {
    down(mode_ == Mode::Handshake ? "peer closed the connection during the TLS handshake"
                                  : "peer closed the tunnel connection without close_notify",
         0);
}

void TlsLink::on_socket_error(const char* what, int err) noexcept { down(what, err); }

bool TlsLink::on_socket_recv_error(int err) noexcept {
    // Under kTLS RX a plain recv fails with EIO when the next record is not application data;
    // EKEYEXPIRED would mean the kernel waits for a key after a KeyUpdate we never read.
    if (mode_ != Mode::Kernel || (err != EIO && err != EKEYEXPIRED)) {
        return false;
    }
    kernel_control_record();
    return true;
}

void TlsLink::kernel_control_record() noexcept {
    // Read the record with its type. A pool buffer, not a small one: the kernel truncates a
    // control record to the buffer, and should data come first it is delivered, not dropped.
    buf::Chunk c = ctx_.alloc_tunnel_chunk();
    if (c.empty()) {
        down("out of buffers reading a kTLS control record", 0);
        return;
    }
    tls::KtlsRecvResult r = tls::ktls_recv(io_.fd(), c.span(), MSG_DONTWAIT);
    if (r.err != 0) {
        down(r.err == EKEYEXPIRED ? "kTLS RX is waiting for a key after an unseen KeyUpdate"
                                  : "recv of a kTLS control record failed",
             r.err);
        return;
    }
    switch (r.record.kind) {
        case tls::KtlsRecordKind::Data:
            if (r.bytes == 0) {
                on_socket_eof();
                return;
            }
            c.set_size(static_cast<uint32_t>(r.bytes));
            ctx_.metrics.tunnel_bytes_in.add(r.bytes);
            sink_->on_link_read(std::move(c));
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

void TlsLink::kernel_rx_key_update(bool update_requested) noexcept {
    ctx_.metrics.key_updates_received.add();
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

bool TlsLink::kernel_tx_key_update() noexcept {
    // No ring send is in flight (write() holds the only batch), so the KeyUpdate lands between
    // the bytes already sent under the old key and the ones sent next under the new key. A
    // non-blocking sendmsg of 5 bytes: if the socket buffer is full, rotate on the next write.
    const int err = tls::ktls_send_key_update(io_.fd(), false, MSG_DONTWAIT);
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

bool TlsLink::install_next_kernel_key(tls::KtlsDirection direction) noexcept {
    const bool tx = direction == tls::KtlsDirection::Tx;
    tls::DirectionKeys& current = tx ? kernel_keys_->tx : kernel_keys_->rx;
    tls::DirectionKeys next;
    if (!tls::next_direction_keys(current, &next)) {
        down(tx ? "deriving the next TLS TX key failed" : "deriving the next TLS RX key failed", 0);
        return false;
    }
    if (absl::Status st = tls::ktls_rekey(io_.fd(), direction, next); !st.ok()) {
        FERRY_LOG(Error, "tunnel kTLS: %s", st.message());
        down(tx ? "kTLS TX rekey failed" : "kTLS RX rekey failed", 0);
        return false;
    }
    current = next;
    return true;
}

// ---- output -----------------------------------------------------------------------------------

void TlsLink::queue_ciphertext(buf::Chunk&& c) noexcept { tx_.push(ctx_.nodes, std::move(c)); }

void TlsLink::send_queued() noexcept {
    if (io_.sending() || tx_.empty() || down_) {
        return;
    }
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (buf::ChunkNode* node = tx_.head(); node != nullptr && n < kMaxIov; node = node->next) {
        iov_[n].iov_base = node->chunk.data();
        iov_[n].iov_len = node->chunk.size();
        bytes += node->chunk.size();
        ++n;
    }
    sending_bytes_ = static_cast<uint32_t>(bytes);
    ctx_.metrics.tunnel_bytes_out.add(bytes);
    io_.send(iov_, n, bytes);
}

bool TlsLink::seal_batch() noexcept {
    // Gather what is left of the batch as spans and seal it straight into pool buffers: the
    // cipher reads each plaintext byte once and writes its ciphertext once.
    WriteBatch* batch = batch_;
    std::span<const std::byte> pieces[WriteBatch::kMaxIov];
    const uint32_t start = seal_iov_;
    const uint32_t count = batch->iov_count - start;
    for (uint32_t i = 0; i < count; ++i) {
        pieces[i] = {static_cast<const std::byte*>(batch->iov[start + i].iov_base),
                     batch->iov[start + i].iov_len};
    }
    if (count > 0) {
        pieces[0] = pieces[0].subspan(seal_offset_);
    }
    uint32_t first = 0;
    bool done = true;
    while (first < count) {
        buf::Chunk out = ctx_.alloc_tunnel_chunk();
        if (out.empty()) {
            done = false;
            break;
        }
        // Fill the buffer with records of at most kMaxOwnRecord bytes each.
        uint32_t used = 0;
        while (first < count && out.capacity() - used > tls::kRecordOverhead) {
            uint32_t room = std::min(out.capacity() - used, kMaxOwnRecord);
            tls::SealResult r =
                records_->seal({pieces + first, count - first}, {out.data() + used, room});
            if (r.written == 0) {
                break;
            }
            used += static_cast<uint32_t>(r.written);
            size_t consumed = r.consumed;
            while (first < count && consumed >= pieces[first].size()) {
                consumed -= pieces[first].size();
                ++first;
            }
            if (first < count) {
                pieces[first] = pieces[first].subspan(consumed);
                if (pieces[first].empty()) {
                    ++first;
                }
            }
            key_epoch_bytes_ += r.consumed;
        }
        out.set_size(used);
        queue_ciphertext(std::move(out));
    }
    // Remember where sealing stopped, to go on once buffers come back.
    seal_iov_ = start + first;
    seal_offset_ = first < count ? batch->iov[seal_iov_].iov_len - pieces[first].size() : 0;
    return done;
}

bool TlsLink::batch_sealed() const noexcept {
    return mode_ != Mode::User || batch_ == nullptr || seal_iov_ >= batch_->iov_count;
}

void TlsLink::seal_and_send() noexcept {
    if (!batch_sealed() && !seal_batch()) {
        // Both pools are dry. Our own queued records return buffers as they go out; with none
        // queued, wait for other sockets to return some instead of dropping the connection.
        waiting_for_buffers();
        if (tx_.empty() && !io_.sending()) {
            ctx_.park_starved(this);
        }
    } else if (rx_stalled_.empty()) {
        buffer_wait_ = false;
    }
    send_queued();
}

void TlsLink::waiting_for_buffers() noexcept {
    // One wait, however many re-arms it takes to end.
    if (!buffer_wait_) {
        buffer_wait_ = true;
        ctx_.metrics.tls_buffer_waits.add();
    }
}

void TlsLink::rearm() noexcept {
    if (down_) {
        return;
    }
    if (!batch_sealed()) {
        seal_and_send();
    }
    if (rx_stalled_.empty()) {
        return;
    }
    // Feed the held bytes again, in order; a record that still cannot be gathered stalls anew
    // and the rest queues behind it.
    buf::ChunkQueue held;
    held.swap(rx_stalled_);
    while (!held.empty() && !down_) {
        buf::Chunk c = held.pop(ctx_.nodes);
        user_input(std::move(c));
    }
    while (!held.empty()) {
        rx_stalled_.push(ctx_.nodes, held.pop(ctx_.nodes));
    }
    if (rx_stalled_.empty() && !down_) {
        buffer_wait_ = !batch_sealed();
        if (ktls_wanted_) {
            try_install_ktls();
        } else {
            io_.start_reading();
        }
    }
}

bool TlsLink::key_update_due() const noexcept {
    return (peer_requested_update_ || (peer_key_update_ && rotation_due(ctx_.now_ns))) &&
           tls_.generation() == generation_at_start_;
}

void TlsLink::key_update_done() noexcept {
    ctx_.metrics.key_updates_sent.add();
    peer_requested_update_ = false;
    start_key_epoch(ctx_.now_ns);
}

void TlsLink::write(WriteBatch* batch) noexcept {
    batch_ = batch;
    if (mode_ == Mode::Kernel) {
        if (kernel_keys_ && key_update_due() && !io_.sending() && kernel_tx_key_update()) {
            key_update_done();
        }
        if (down_) {
            return;
        }
        key_epoch_bytes_ += batch->bytes;
        ctx_.metrics.tunnel_bytes_out.add(batch->bytes);
        sending_bytes_ = 0;
        io_.send(batch->iov, batch->iov_count, batch->bytes);
        return;
    }
    if (key_update_due()) {
        // TLS 1.3 KeyUpdate (RFC 8446 §4.6.3): the record goes out under the old key, everything
        // after it under the next one. No connection, stream or byte is disturbed.
        buf::Chunk ku = ctx_.alloc_tunnel_chunk();
        if (!ku.empty()) {
            ku.set_size(static_cast<uint32_t>(records_->update_tx_key(ku.span())));
            queue_ciphertext(std::move(ku));
            key_update_done();
        }
    }
    seal_iov_ = 0;
    seal_offset_ = 0;
    seal_and_send();
}

void TlsLink::on_socket_sent() noexcept {
    if (sending_bytes_ > 0) {
        tx_.consume(ctx_.nodes, sending_bytes_);
        sending_bytes_ = 0;
    }
    if (!batch_sealed()) {
        seal_and_send();  // our records freed buffers: seal what is left of the batch
    }
    if (!tx_.empty()) {
        send_queued();
        return;
    }
    if (batch_ != nullptr && batch_sealed()) {
        batch_ = nullptr;
        sink_->on_link_written();
    }
    try_install_ktls();
}

void TlsLink::on_socket_closed() noexcept {
    partial_.reset();
    tx_.clear(ctx_.nodes);
    rx_stalled_.clear(ctx_.nodes);
    if (batch_ != nullptr) {
        batch_ = nullptr;
        sink_->on_link_written();
    }
    sink_->on_link_quiescent();
}

// ---- rotation ---------------------------------------------------------------------------------

void TlsLink::start_key_epoch(uint64_t now_ns) noexcept {
    key_epoch_ns_ = now_ns;
    key_epoch_bytes_ = 0;
}

bool TlsLink::rotation_due(uint64_t now_ns) const noexcept {
    return (options_.rekey_bytes != 0 && key_epoch_bytes_ >= options_.rekey_bytes) ||
           (options_.rekey_interval_ns != 0 &&
            now_ns - key_epoch_ns_ >= options_.rekey_interval_ns);
}

void TlsLink::tick(uint64_t now_ns) noexcept {
    if (mode_ == Mode::Handshake || down_) {
        return;
    }
    ctx_.metrics.key_bytes.set(static_cast<int64_t>(key_epoch_bytes_));
    ctx_.metrics.key_age_ms.set(static_cast<int64_t>((now_ns - key_epoch_ns_) / 1'000'000));
    bool certs_changed = tls_.generation() != generation_at_start_;
    bool in_place = peer_key_update_ && (mode_ == Mode::User || kernel_keys_);
    if ((rotation_due(now_ns) && !in_place) || certs_changed) {
        // New certificates can only reach the peer in a new handshake, and kTLS before Linux
        // 6.14 cannot take a new key. Either way: a fresh connection, then drain this one.
        if (!reconnect_requested_) {
            reconnect_requested_ = true;
            ctx_.metrics.rotations_reconnect.add();
            sink_->on_link_rotation_due(certs_changed ? "certificates were reloaded"
                                                      : "key rotation due (reconnect)");
        }
    }
}

}  // namespace ferry::tunnel
