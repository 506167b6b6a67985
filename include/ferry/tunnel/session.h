// Session: the stream multiplexer over one tunnel connection (docs/tunnel-protocol.md).
//
// Bytes from the Transport go through the pure FrameDecoder; DATA payloads become slices of the
// very receive buffer they arrived in and go to the stream's handler (a client or upstream socket)
// without a copy. Outgoing, handlers queue chunks on their Stream; once per loop iteration the
// shard calls flush(), which packs control frames and then DATA frames of ready streams,
// round-robin with one frame per stream per turn (so a bulk stream cannot starve the others),
// into one gathered write. Credit-based flow control bounds every queue. When both buffer pools
// are dry, control frames are owed (kept as state) rather than dropped or fatal.
// Shard-affine; callbacks to handlers and the owner run from CQE dispatch.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ferry/base/object_pool.h"
#include "ferry/io/buffer_wait.h"
#include "ferry/loop/context.h"
#include "ferry/proto/tunnel/flow_control.h"
#include "ferry/proto/tunnel/frame.h"
#include "ferry/proto/tunnel/frame_decoder.h"
#include "ferry/transport/transport.h"
#include "ferry/tunnel/metrics.h"
#include "ferry/tunnel/stream.h"
#include "ferry/tunnel/tuning.h"

namespace ferry::tunnel {

class Session;

// Forwards decoder events to a Session. A separate type because a class cannot satisfy the
// FrameSink concept while it is still incomplete (the decoder is a Session member).
struct SessionFrameSink {
    Session* session;
    bool on_hello(const proto::tunnel::Hello& hello) noexcept;
    bool on_open(uint32_t stream_id, const proto::tunnel::Open& open) noexcept;
    bool on_data(uint32_t stream_id, std::span<const std::byte> piece,
                 proto::tunnel::DataFlags flags) noexcept;
    bool on_window(uint32_t stream_id, uint32_t increment) noexcept;
    bool on_reset(uint32_t stream_id, proto::tunnel::ErrorCode code,
                  std::string_view reason) noexcept;
    bool on_ping(bool ack, uint64_t opaque) noexcept;
    bool on_goaway(uint32_t last_stream_id, proto::tunnel::ErrorCode code,
                   std::string_view debug) noexcept;
    bool on_open_ack(uint32_t stream_id, const proto::tunnel::MetadataView& metadata) noexcept;
    bool on_trailers(uint32_t stream_id, const proto::tunnel::MetadataView& metadata) noexcept;
};

// What the sessions of one shard share: the loop, the counters, the knobs.
struct SessionEnv {
    loop::Context& loop;
    Metrics& metrics;
    const Tuning& tuning;
};

// The role that owns sessions (initiator connector or terminator acceptor).
class SessionOwner {
  public:
    // The peer's HELLO arrived: streams may be opened.
    virtual void on_session_ready(Session& session) noexcept = 0;
    // The peer opened a stream: its handler, or a refusal (the session sends the RESET).
    virtual OpenDecision on_stream_open(Session& session, Stream& stream,
                                        const proto::tunnel::Open& open) noexcept = 0;
    // The peer sent GOAWAY: no new streams here; existing ones finish.
    virtual void on_session_draining(Session& session) noexcept = 0;
    // Transport closed and every operation drained; the owner retires the session (deferred).
    virtual void on_session_closed(Session& session) noexcept = 0;
    // The transport's keys must rotate by replacing the connection: open a new one, then drain
    // this.
    virtual void on_session_rotation_due(Session& session, const char* why) noexcept = 0;

  protected:
    ~SessionOwner() = default;
};

class Session final : public loop::Flushable, private io::BufferWaiter {
  public:
    enum class Role : uint8_t { Initiator, Terminator };
    enum class State : uint8_t { Hello, Open, Draining, Closing, Closed };

    // `env` outlives the session; `transport` is owned and started by start().
    Session(const SessionEnv& env, SessionOwner* owner,
            std::unique_ptr<transport::Transport> transport, Role role,
            std::string_view node_name) noexcept;
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Sends the preface and HELLO and starts reading.
    void start() noexcept;
    // Counts this connection's bytes and RTT into `counters` too (they outlive the session).
    void set_peer_counters(PeerCounters* counters) noexcept { peer_counters_ = counters; }
    // Opens a stream (initiator side, or terminator pushing) with the opener's metadata, encoded
    // into the OPEN before this returns; nullptr when the session is not open, is draining, the
    // peer's stream limit is reached, no buffer is free for the OPEN, or the peer speaks v1 and
    // `protocol` is a message protocol (WebSocket, gRPC need v1.1).
    [[nodiscard]] Stream* open_stream(proto::tunnel::StreamProtocol protocol,
                                      std::string_view routing_key,
                                      std::span<const proto::tunnel::MetadataEntry> metadata,
                                      StreamHandler* handler) noexcept;
    // Writes everything queued (control first, then data round-robin). Runs at the end of the
    // loop iteration for sessions that queued output, and when a write completes.
    void flush() noexcept override;
    // Two-step drain (docs/tunnel-protocol.md §10): GOAWAY(last = 2^31-1) and a PING; once it
    // is answered (or the ping timeout passed), GOAWAY with the last peer stream really served;
    // closes once that went out and every stream has finished. OPENs in flight meanwhile are
    // still served.
    void drain() noexcept;
    // Periodic work (pings, RTT, liveness), `now_ns` monotonic.
    void tick(uint64_t now_ns) noexcept;
    // Closes at once; streams are reset.
    void abort(const char* reason) noexcept;
    // Logs the connection's and each stream's flow-control and queue state.
    void dump() const noexcept;

    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] bool usable() const noexcept { return state_ == State::Open; }
    [[nodiscard]] size_t stream_count() const noexcept { return streams_.size(); }
    [[nodiscard]] const std::string& peer_name() const noexcept { return peer_name_; }
    // Why the session closed (or is closing); empty while it runs.
    [[nodiscard]] const std::string& close_reason() const noexcept { return close_reason_; }
    // True once the peer's HELLO was accepted (on_session_ready ran), whatever came later.
    [[nodiscard]] bool hello_exchanged() const noexcept { return hello_exchanged_; }
    [[nodiscard]] uint32_t peer_capabilities() const noexcept { return peer_capabilities_; }
    // The shards the peer said serve its tunnel connections (HELLO Shards), 0 when not said.
    [[nodiscard]] uint32_t peer_shards() const noexcept { return peer_shards_; }
    // Both sides speak v1.1 (Messages): message boundaries, OPEN_ACK, TRAILERS, RESET reasons.
    [[nodiscard]] bool messages() const noexcept { return messages_; }
    [[nodiscard]] const char* transport_kind() const noexcept { return transport_->kind(); }

  private:
    friend struct SessionFrameSink;
    // Frame events (through SessionFrameSink).
    bool on_hello(const proto::tunnel::Hello& hello) noexcept;
    bool on_open(uint32_t stream_id, const proto::tunnel::Open& open) noexcept;
    bool on_data(uint32_t stream_id, std::span<const std::byte> piece,
                 proto::tunnel::DataFlags flags) noexcept;
    bool on_window(uint32_t stream_id, uint32_t increment) noexcept;
    bool on_reset(uint32_t stream_id, proto::tunnel::ErrorCode code,
                  std::string_view reason) noexcept;
    bool on_ping(bool ack, uint64_t opaque) noexcept;
    bool on_goaway(uint32_t last_stream_id, proto::tunnel::ErrorCode code,
                   std::string_view debug) noexcept;
    bool on_open_ack(uint32_t stream_id, const proto::tunnel::MetadataView& metadata) noexcept;
    bool on_trailers(uint32_t stream_id, const proto::tunnel::MetadataView& metadata) noexcept;
    // The stream a frame names, or nullptr; for an id never opened that is a connection error
    // (failed: the caller returns false), for one already closed the frame is discarded.
    [[nodiscard]] Stream* frame_stream(uint32_t stream_id, const char* frame,
                                       bool* failed) noexcept;
    // Ends `s` with a stream error: RESET to the peer, on_stream_reset to the handler.
    void stream_error(Stream& s, proto::tunnel::ErrorCode code, const char* reason) noexcept;
    [[nodiscard]] bool ours(uint32_t stream_id) const noexcept {
        return (stream_id & 1U) == (role_ == Role::Initiator ? 1U : 0U);
    }

    friend class Stream;
    class TransportEvents;

    // Stream -> Session.
    void stream_has_output(Stream& s) noexcept;
    [[nodiscard]] bool stream_accept(
        Stream& s, std::span<const proto::tunnel::MetadataEntry> metadata) noexcept;
    [[nodiscard]] bool stream_trailers(
        Stream& s, std::span<const proto::tunnel::MetadataEntry> trailers) noexcept;
    void stream_consumed(Stream& s, uint32_t n) noexcept;
    void stream_consumed_conn_only(uint32_t n) noexcept;
    void stream_reset_locally(Stream& s, proto::tunnel::ErrorCode code) noexcept;
    void stream_maybe_done(Stream& s) noexcept;

    // Transport -> Session.
    void transport_read(buf::Chunk&& bytes) noexcept;
    void transport_written() noexcept;
    void transport_down(const char* reason, int err) noexcept;
    void transport_quiescent() noexcept;
    void transport_established() noexcept;
    void send_hello() noexcept;
    // Makes the write batch and the decoder (once the transport carries bytes).
    void prepare_io() noexcept;

    void mark_dirty() noexcept;
    [[nodiscard]] std::span<std::byte> control_space(size_t n) noexcept;
    void control_commit(size_t n) noexcept;
    // Sends the increment `window` returned; when no buffer is free it is owed instead.
    void send_credit(uint32_t stream_id, proto::tunnel::RecvWindow& window,
                     uint32_t increment) noexcept;
    // `reason` is static text, sent only to a v1.1 peer.
    void send_reset(uint32_t stream_id, proto::tunnel::ErrorCode code,
                    const char* reason = nullptr) noexcept;
    void send_drain_goaway() noexcept;
    // The second GOAWAY of a drain, with the last peer stream really served.
    void finish_drain_announcement() noexcept;
    // Encode one frame into the control buffer; false (nothing written) when no buffer is free.
    [[nodiscard]] bool write_reset(uint32_t stream_id, proto::tunnel::ErrorCode code,
                                   const char* reason) noexcept;
    [[nodiscard]] bool write_ping(bool ack, uint64_t opaque) noexcept;
    [[nodiscard]] bool write_open_ack(
        uint32_t stream_id, std::span<const proto::tunnel::MetadataEntry> metadata) noexcept;
    [[nodiscard]] bool write_goaway(uint32_t last_stream_id, proto::tunnel::ErrorCode code,
                                    std::string_view debug) noexcept;
    // `n` bytes of a pool buffer that leave later, on their own (a stream's TRAILERS): carved
    // from a shared side buffer so small frames do not pin a buffer each. Empty when none.
    [[nodiscard]] buf::Chunk carve(size_t n) noexcept;
    [[nodiscard]] bool owes_control() const noexcept;
    // Encodes what is owed, as far as buffers allow; parks the session for the rest.
    void pay_owed_control() noexcept;
    // Buffers may be back: pay what is owed and write.
    void retry_after_buffer_wait() noexcept override;
    void fail(proto::tunnel::ErrorCode code, const char* detail) noexcept;
    void reset_all_streams(proto::tunnel::ErrorCode code) noexcept;
    void destroy_stream(Stream* s) noexcept;
    void ready_push(Stream* s) noexcept;
    Stream* ready_pop() noexcept;
    void ready_remove(Stream* s) noexcept;
    [[nodiscard]] bool emit_data_frame(Stream& s) noexcept;
    [[nodiscard]] bool stream_sendable(const Stream& s) const noexcept;
    void maybe_finish_drain() noexcept;

    SessionEnv env_;
    PeerCounters* peer_counters_ = nullptr;
    loop::Context& ctx_;
    SessionOwner* owner_;
    std::unique_ptr<transport::Transport> transport_;
    std::unique_ptr<TransportEvents> transport_events_;
    Role role_;
    State state_ = State::Hello;
    std::string node_name_;
    std::string peer_name_;
    uint32_t peer_capabilities_ = 0;
    uint32_t peer_shards_ = 0;
    bool hello_exchanged_ = false;
    bool hello_sent_ = false;
    bool messages_ = false;
    std::string close_reason_;
    SessionFrameSink sink_{this};
    std::optional<proto::tunnel::FrameDecoder<SessionFrameSink>> decoder_;
    buf::Chunk* reading_ = nullptr;  // the chunk being decoded, to slice DATA from

    absl::flat_hash_map<uint32_t, Stream*> streams_;
    base::ObjectPool<Stream> stream_pool_;
    uint32_t next_stream_id_;
    uint32_t last_peer_stream_id_ = 0;
    uint32_t peer_goaway_last_ = proto::tunnel::kMaxStreamId;  // the peer's last GOAWAY

    // Peer's limits from its HELLO.
    uint32_t peer_max_frame_ = proto::tunnel::kDefaultMaxFrameSize;
    uint32_t peer_stream_window_ = 0;
    uint32_t peer_max_streams_ = 0;
    proto::tunnel::SendWindow conn_send_{0};
    proto::tunnel::RecvWindow conn_recv_;

    // Output: encoded control frames accumulate in ctrl_ (a pool buffer) and go out as a slice;
    // when it fills before a write could take it, the unsent part waits in ctrl_full_.
    buf::ChunkQueue ctrl_full_;
    buf::Chunk ctrl_;
    uint32_t ctrl_used_ = 0;
    uint32_t ctrl_sent_ = 0;
    // Control frames owed to the peer because no buffer was free to encode them (both pools
    // dry), kept as state rather than dropped or failing the connection; paid at the next flush
    // that finds a buffer. Bounded: credit coalesces in the windows, only the newest PING wants
    // its ACK, and resets are capped (reserved once, at max_streams).
    bool owe_credit_ = false;
    bool owe_goaway_ = false;
    bool owe_accept_ = false;  // some stream's (empty) OPEN_ACK
    std::optional<uint64_t> owed_ping_ack_;
    struct OwedReset {
        uint32_t stream_id;
        proto::tunnel::ErrorCode code;
        const char* reason;
    };
    std::vector<OwedReset> owed_resets_;
    // Small frames that leave on their own later (TRAILERS) are carved from here.
    buf::Chunk side_;
    uint32_t side_used_ = 0;
    // Drain: 0 = none, 1 = GOAWAY(2^31-1) and its PING sent, 2 = the final GOAWAY sent.
    uint8_t drain_step_ = 0;
    uint64_t drain_started_ns_ = 0;
    Stream* ready_head_ = nullptr;
    Stream* ready_tail_ = nullptr;
    std::unique_ptr<transport::WriteBatch> batch_;
    bool writing_ = false;
    bool close_after_flush_ = false;
    bool transport_closed_ = false;

    uint64_t last_ping_ns_ = 0;
    uint64_t ping_outstanding_ns_ = 0;
};

}  // namespace ferry::tunnel
