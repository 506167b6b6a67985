// MemoryTransport: a test-only lower transport — two of them joined in memory, bytes copied into
// tunnel-pool buffers of at most `max_piece` bytes (so TLS records arrive split), delivered from
// the ring (a NOP completion) like a socket's, never inside the call that wrote them.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "ferry/base/check.h"
#include "ferry/buf/chunk_queue.h"
#include "ferry/io/op.h"
#include "ferry/loop/context.h"
#include "ferry/transport/transport.h"

namespace ferry::transport::testing {

class MemoryTransport final : public Transport {
  public:
    MemoryTransport(loop::Context& ctx, uint32_t max_piece) : ctx_(ctx), max_piece_(max_piece) {}
    ~MemoryTransport() override {
        inbox_.clear(ctx_.nodes);
        if (peer_ != nullptr) {
            peer_->peer_ = nullptr;
        }
    }

    static void join(MemoryTransport& a, MemoryTransport& b) {
        a.peer_ = &b;
        b.peer_ = &a;
    }

    void start(TransportSink* sink) noexcept override { sink_ = sink; }

    void write(iovec* iov, uint32_t count, uint64_t) noexcept override {
        FERRY_CHECK(!closed_);
        for (uint32_t i = 0; i < count; ++i) {
            const auto* p = static_cast<const std::byte*>(iov[i].iov_base);
            size_t left = iov[i].iov_len;
            wire.append(reinterpret_cast<const char*>(p), left);
            while (left > 0 && peer_ != nullptr) {
                buf::Chunk c = ctx_.alloc_tunnel_chunk();
                FERRY_CHECK(!c.empty());
                const auto n = static_cast<uint32_t>(std::min<size_t>(left, max_piece_));
                std::memcpy(c.data(), p, n);
                c.set_size(n);
                peer_->inbox_.push(ctx_.nodes, std::move(c));
                p += n;
                left -= n;
            }
        }
        written_pending_ = true;
        arm();
        if (peer_ != nullptr) {
            peer_->arm();
        }
    }
    void pause_reading() noexcept override { reading_ = false; }
    void resume_reading() noexcept override {
        reading_ = true;
        arm();
    }
    // The peer reads to the end of what was written, then sees the stream end.
    void shutdown_write() noexcept override {
        if (peer_ != nullptr) {
            peer_->peer_closed_ = true;
            peer_->arm();
        }
    }
    void close() noexcept override {
        if (closed_) {
            return;
        }
        closed_ = true;
        if (peer_ != nullptr) {
            peer_->peer_closed_ = true;
            peer_->arm();
            peer_->peer_ = nullptr;
            peer_ = nullptr;
        }
        arm();
    }
    [[nodiscard]] const char* kind() const noexcept override { return "memory"; }

    // Every byte written through this end, in order (what a wire tap would see).
    std::string wire;

  private:
    void on_ring(int32_t, uint32_t) noexcept {
        armed_ = false;
        if (written_pending_) {
            written_pending_ = false;
            sink_->on_transport_written();
        }
        while (reading_ && !closed_ && !inbox_.empty()) {
            sink_->on_transport_read(inbox_.pop(ctx_.nodes));
        }
        if (peer_closed_ && inbox_.empty() && !down_reported_ && !closed_) {
            down_reported_ = true;
            sink_->on_transport_down("peer closed the memory transport", 0);
        }
        if (closed_ && !armed_ && !quiescent_reported_) {
            quiescent_reported_ = true;
            inbox_.clear(ctx_.nodes);
            sink_->on_transport_quiescent();
        }
    }
    void arm() noexcept {
        if (!armed_ && !quiescent_reported_) {
            armed_ = true;
            io_uring_prep_nop(ctx_.ring.sqe(&op_));
        }
    }

    loop::Context& ctx_;
    uint32_t max_piece_;
    MemoryTransport* peer_ = nullptr;
    TransportSink* sink_ = nullptr;
    buf::ChunkQueue inbox_;
    io::MemberOp<MemoryTransport, &MemoryTransport::on_ring> op_{this};
    bool armed_ = false;
    bool reading_ = true;
    bool written_pending_ = false;
    bool closed_ = false;
    bool peer_closed_ = false;
    bool down_reported_ = false;
    bool quiescent_reported_ = false;
};

}  // namespace ferry::transport::testing
