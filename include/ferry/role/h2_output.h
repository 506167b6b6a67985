// What both ends of ferry's HTTP/2 (the initiator's gRPC server, the terminator's gRPC upstream
// client) need between nghttp2 and the socket, written once:
//
// H2Output: a connection's outgoing bytes. nghttp2's own frames (HEADERS, SETTINGS, WINDOW_UPDATE,
// the 9-byte header of each DATA frame) are copied into a staging buffer from the local pool; DATA
// payloads (NGHTTP2_DATA_FLAG_NO_COPY) are the tunnel's buffers themselves, queued in order after
// their header. One gathered write per loop iteration sends what is queued.
//
// GrpcOutbox: one call's outgoing gRPC messages. A message arrives from the tunnel in pieces; its
// 5-byte prefix needs the whole length, so the pieces wait (as slices, never copied) until the
// message ends, then the rebuilt prefix and the pieces are ready for DATA frames.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>

#include "ferry/buf/chunk_queue.h"
#include "ferry/loop/context.h"
#include "ferry/proto/grpc/status.h"
#include "ferry/proto/tunnel/frame.h"
#include "ferry/transport/transport.h"
#include "ferry/tunnel/stream.h"

namespace ferry::role {

class H2Output final {
  public:
    explicit H2Output(loop::Context& ctx) noexcept : ctx_(ctx) {}
    ~H2Output() { clear(); }
    H2Output(const H2Output&) = delete;
    H2Output& operator=(const H2Output&) = delete;

    // nghttp2's send callback: copies a frame's bytes; NGHTTP2_ERR_WOULDBLOCK when enough waits
    // already (bounded memory per connection) or no buffer is free.
    [[nodiscard]] ssize_t copy_frame(const uint8_t* data, size_t len) noexcept;
    // nghttp2's send_data callback, first half: the DATA frame's header. False: would block.
    [[nodiscard]] bool data_header(const uint8_t* framehd) noexcept;
    // A payload slice, queued after what came before (credit-free or not: the caller counts).
    void push(buf::Chunk&& payload) noexcept { out_.push(ctx_.nodes, std::move(payload)); }
    // `n` bytes of the staging buffer as a Chunk of their own (a rebuilt message prefix); empty
    // when no buffer was free.
    [[nodiscard]] buf::Chunk carve(size_t n) noexcept;

    // Starts a write of what is queued on `transport` (nothing when empty or one is in flight).
    // True when a write started or is in flight.
    bool write_to(transport::Transport& transport) noexcept;
    // The write finished: drops what it sent. True when more waits.
    [[nodiscard]] bool written() noexcept;
    [[nodiscard]] bool writing() const noexcept { return sending_; }
    // Drops what is queued (the connection is closing).
    void clear() noexcept;
    // Nothing queued: an idle connection gives its staging buffer back.
    void release_idle() noexcept;

  private:
    static constexpr uint32_t kMaxIov = 64;
    // nghttp2 is asked for frames until this much output waits.
    static constexpr uint64_t kMaxPending = 256 * 1024;

    bool reserve(size_t need) noexcept;
    void seal() noexcept;

    loop::Context& ctx_;
    buf::ChunkQueue out_;
    // [staging_start_, staging_end_) is not yet in out_; what precedes it may be in flight.
    buf::Chunk staging_;
    uint32_t staging_start_ = 0;
    uint32_t staging_end_ = 0;
    iovec iov_[kMaxIov];
    uint32_t sending_nodes_ = 0;
    bool sending_ = false;
};

class GrpcOutbox final {
  public:
    GrpcOutbox() noexcept = default;
    GrpcOutbox(const GrpcOutbox&) = delete;
    GrpcOutbox& operator=(const GrpcOutbox&) = delete;

    struct Refusal {
        proto::grpc::StatusCode status = proto::grpc::StatusCode::Ok;
        const char* message = nullptr;
        [[nodiscard]] bool ok() const noexcept { return message == nullptr; }
    };

    // A piece of a message from `stream`. Pieces before the last return their tunnel credit now
    // (a message larger than the window would otherwise never complete); the last piece's credit
    // returns when it leaves in a DATA frame. Refused: a kind gRPC has not, a message over
    // `max_message`, or no buffer for the prefix.
    [[nodiscard]] Refusal push(loop::Context& ctx, H2Output& out, tunnel::Stream& stream,
                               buf::Chunk&& data, proto::tunnel::DataFlags flags,
                               uint32_t max_message) noexcept;
    // Bytes ready for DATA frames.
    [[nodiscard]] uint64_t ready_bytes() const noexcept { return ready_.bytes(); }
    // Moves `len` ready bytes into `out`; returns the tunnel credit they carry (0 when `stream`
    // is gone). False when fewer than `len` were ready.
    [[nodiscard]] bool take(loop::Context& ctx, H2Output& out, size_t len,
                            uint64_t* credit) noexcept;
    // A message cut off (trailers or a reset came before its end) never goes out.
    void drop_partial(loop::Context& ctx) noexcept { partial_.clear(ctx.nodes); }
    void clear(loop::Context& ctx) noexcept {
        partial_.clear(ctx.nodes);
        ready_.clear(ctx.nodes);
    }

  private:
    buf::ChunkQueue partial_;
    buf::ChunkQueue ready_;
};

// A piece nghttp2 handed us as a view of `reading` (the receive buffer it is parsing): a shared
// slice of it, no copy. Should a piece ever not lie in it, a copy in a local buffer. Empty on no
// buffer (and for an empty piece).
[[nodiscard]] buf::Chunk slice_of_input(loop::Context& ctx, buf::Chunk* reading,
                                        std::span<const std::byte> piece) noexcept;

}  // namespace ferry::role
