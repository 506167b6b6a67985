// Stream: one multiplexed stream of a Session — a byte stream (TCP) or a message stream
// (WebSocket, gRPC: tunnel protocol v1.1) — and the handler contract of its local side.
#pragma once

#include <cstdint>
#include <span>

#include "ferry/buf/chunk_queue.h"
#include "ferry/proto/tunnel/flow_control.h"
#include "ferry/proto/tunnel/frame.h"

namespace ferry::tunnel {

class Session;

// The local end of a stream (a client socket at the initiator, an upstream at the terminator).
// Called on the shard thread: from CQE dispatch, except on_stream_writable(), which runs from the
// end-of-iteration flush. A handler may write from any of them. Metadata views are valid during
// the call only.
class StreamHandler {
  public:
    // Peer bytes, in order. On a message stream `flags` carry the message kind, and
    // end_message() marks the last piece of a message (an empty message is an empty Chunk with
    // end_message()); on a byte stream they are 0. The handler sends the bytes on and calls
    // Stream::consumed() when they are delivered, which returns credit to the peer.
    virtual void on_stream_data(buf::Chunk&& data, proto::tunnel::DataFlags flags) noexcept = 0;
    // The peer half-closed its direction.
    virtual void on_stream_fin() noexcept = 0;
    // The peer ended its direction with trailing metadata (v1.1); by default, like a FIN.
    virtual void on_stream_trailers(const proto::tunnel::MetadataView& /*trailers*/) noexcept {
        on_stream_fin();
    }
    // The far side accepted a stream this side opened (v1.1 OPEN_ACK) with its response
    // metadata. Never called when the peer speaks v1 (streams are then accepted silently).
    virtual void on_stream_accepted(const proto::tunnel::MetadataView& /*metadata*/) noexcept {}
    // The stream is gone (peer reset, tunnel lost, refused): RefusedStream means the far side
    // did nothing with it. The handler must drop its Stream* now.
    virtual void on_stream_reset(proto::tunnel::ErrorCode code) noexcept = 0;
    // Queued output fell below the low watermark after should_pause() said yes: read again.
    virtual void on_stream_writable() noexcept = 0;

  protected:
    ~StreamHandler() = default;
};

// How the owner answers a peer's OPEN: a handler for the stream, or a refusal with the RESET code
// and a reason (static text, logged and, where the peer takes it, sent in the RESET).
struct OpenDecision {
    StreamHandler* handler = nullptr;
    proto::tunnel::ErrorCode code = proto::tunnel::ErrorCode::RefusedStream;
    const char* reason = nullptr;

    [[nodiscard]] static OpenDecision accept(StreamHandler* handler) noexcept {
        return {handler, proto::tunnel::ErrorCode::NoError, nullptr};
    }
    [[nodiscard]] static OpenDecision refuse(proto::tunnel::ErrorCode code,
                                             const char* reason) noexcept {
        return {nullptr, code, reason};
    }
};

class Stream final {
  public:
    Stream(Session* session, uint32_t id, proto::tunnel::StreamProtocol protocol,
           uint32_t send_window, uint32_t recv_window, StreamHandler* handler) noexcept
        : session_(session),
          handler_(handler),
          id_(id),
          protocol_(protocol),
          send_(send_window),
          recv_(recv_window) {}
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    [[nodiscard]] uint32_t id() const noexcept { return id_; }
    [[nodiscard]] proto::tunnel::StreamProtocol protocol() const noexcept { return protocol_; }
    void set_handler(StreamHandler* handler) noexcept { handler_ = handler; }

    // Queues local bytes for the peer (sent as credit allows; never copied). On a message
    // stream, `flags` give the kind and mark the last piece of a message with end_message()
    // (then `data` may be empty: an empty message); the tunnel may split a message across frames
    // but never puts two in one. Byte streams pass no flags.
    void write(buf::Chunk&& data, proto::tunnel::DataFlags flags = {}) noexcept;
    // Half-closes the local direction after everything queued.
    void finish() noexcept;
    // Half-closes the local direction after everything queued, with trailing metadata (v1.1;
    // encoded now). False when no buffer was free to encode them or they exceed a frame: the
    // caller then resets the stream.
    [[nodiscard]] bool finish_with_trailers(
        std::span<const proto::tunnel::MetadataEntry> trailers) noexcept;
    // Accepts a stream the peer opened, with response metadata (v1.1 OPEN_ACK; nothing is sent
    // to a v1 peer). Call once, before the first write; a handler that writes or finishes first
    // accepts with no metadata. False when the OPEN_ACK could not be encoded (metadata beyond a
    // frame, or no free buffer for it): the caller then resets the stream.
    [[nodiscard]] bool accept(std::span<const proto::tunnel::MetadataEntry> metadata = {}) noexcept;
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
    proto::tunnel::StreamProtocol protocol_;
    proto::tunnel::SendWindow send_;
    proto::tunnel::RecvWindow recv_;
    buf::ChunkQueue out_;  // tags: the DataFlags bits of each piece (kind, end of message)
    buf::Chunk trailers_;  // an encoded TRAILERS frame, sent in place of the FIN
    Stream* ready_next_ = nullptr;
    Stream* ready_prev_ = nullptr;
    bool in_ready_ = false;
    bool fin_queued_ = false;
    bool fin_sent_ = false;
    bool fin_received_ = false;
    bool want_writable_ = false;
    bool accepted_ = false;     // OPEN_ACK sent or owed (peer-opened), or received (ours)
    bool accept_owed_ = false;  // its OPEN_ACK waits for a buffer; its data waits behind it
    bool in_message_ = false;   // the peer is in the middle of a message
    proto::tunnel::MessageKind message_kind_ = proto::tunnel::MessageKind::Binary;
};

}  // namespace ferry::tunnel
