// Stream: one multiplexed byte stream of a Session, and the handler contract of its local side.
#pragma once

#include <cstdint>

#include "ferry/buf/chunk_queue.h"
#include "ferry/proto/tunnel/flow_control.h"
#include "ferry/proto/tunnel/frame.h"

namespace ferry::tunnel {

class Session;

// The local end of a stream (a client socket at the initiator, an upstream at the terminator).
// Called on the shard thread: from CQE dispatch, except on_stream_writable(), which runs from the
// end-of-iteration flush. A handler may write from any of them.
class StreamHandler {
  public:
    // Peer bytes, in order. The handler sends them on and calls Stream::consumed() when the
    // socket took them, which returns credit to the peer.
    virtual void on_stream_data(buf::Chunk&& data) noexcept = 0;
    // The peer half-closed its direction.
    virtual void on_stream_fin() noexcept = 0;
    // The stream is gone (peer reset, tunnel lost). The handler must drop its Stream* now.
    virtual void on_stream_reset(proto::tunnel::ErrorCode code) noexcept = 0;
    // Queued output fell below the low watermark after should_pause() said yes: read again.
    virtual void on_stream_writable() noexcept = 0;

  protected:
    ~StreamHandler() = default;
};

class Stream final {
  public:
    Stream(Session* session, uint32_t id, uint32_t send_window, uint32_t recv_window,
           StreamHandler* handler) noexcept
        : session_(session), handler_(handler), id_(id), send_(send_window), recv_(recv_window) {}
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    [[nodiscard]] uint32_t id() const noexcept { return id_; }
    void set_handler(StreamHandler* handler) noexcept { handler_ = handler; }

    // Queues local bytes for the peer (sent as credit allows; never copied).
    void write(buf::Chunk&& data) noexcept;
    // Half-closes the local direction after everything queued.
    void finish() noexcept;
    // Aborts the stream: queued data is dropped, RESET is sent, and the Stream is freed before
    // this returns — the caller must not touch it again.
    void reset(proto::tunnel::ErrorCode code) noexcept;
    // The handler delivered `n` peer bytes: return the credit.
    void consumed(uint32_t n) noexcept;
    // The handler is finished with the stream (both directions done on its side). The Stream
    // frees itself once its own FIN went out; the caller must not touch it again.
    void detach() noexcept;
    // True when enough is queued that the handler should stop reading; the handler then hears
    // on_stream_writable() once the queue halves.
    [[nodiscard]] bool should_pause() noexcept;

    [[nodiscard]] uint64_t queued_bytes() const noexcept { return out_.bytes(); }

  private:
    friend class Session;

    Session* session_;
    StreamHandler* handler_;
    uint32_t id_;
    proto::tunnel::SendWindow send_;
    proto::tunnel::RecvWindow recv_;
    buf::ChunkQueue out_;
    Stream* ready_next_ = nullptr;
    Stream* ready_prev_ = nullptr;
    bool in_ready_ = false;
    bool fin_queued_ = false;
    bool fin_sent_ = false;
    bool fin_received_ = false;
    bool want_writable_ = false;
};

}  // namespace ferry::tunnel
