// Session: the stream multiplexer over one tunnel connection (docs/tunnel-protocol.md).
//
// Bytes from the Link go through the pure FrameDecoder; DATA payloads become slices of the very
// receive buffer they arrived in and go to the stream's handler (a client or upstream socket)
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
#include "ferry/proto/tunnel/flow_control.h"
#include "ferry/proto/tunnel/frame.h"
#include "ferry/proto/tunnel/frame_decoder.h"
#include "ferry/tunnel/context.h"
#include "ferry/tunnel/link.h"
#include "ferry/tunnel/stream.h"

namespace ferry::tunnel {

class Session;

// Forwards decoder events to a Session. A separate type because a class cannot satisfy the
// FrameSink concept while it is still incomplete (the decoder is a Session member).
struct SessionFrameSink {
    Session* session;
    bool on_hello(const proto::tunnel::Hello& hello) noexcept;
    bool on_open(uint32_t stream_id, const proto::tunnel::Open& open) noexcept;
    bool on_data(uint32_t stream_id, std::span<const std::byte> piece, bool fin) noexcept;
    bool on_window(uint32_t stream_id, uint32_t increment) noexcept;
    bool on_reset(uint32_t stream_id, proto::tunnel::ErrorCode code) noexcept;
    bool on_ping(bool ack, uint64_t opaque) noexcept;
    bool on_goaway(uint32_t last_stream_id, proto::tunnel::ErrorCode code,
                   std::string_view debug) noexcept;
};

// The role that owns sessions (initiator connector or terminator acceptor).
class SessionOwner {
  public:
    // The peer's HELLO arrived: streams may be opened.
    virtual void on_session_ready(Session& session) noexcept = 0;
    // The peer opened a stream; return its handler, or nullptr to refuse it.
    virtual StreamHandler* on_stream_open(Session& session, Stream& stream,
                                          const proto::tunnel::Open& open) noexcept = 0;
    // The peer sent GOAWAY: no new streams here; existing ones finish.
    virtual void on_session_draining(Session& session) noexcept = 0;
    // Link closed and every operation drained; the owner retires the session (deferred).
    virtual void on_session_closed(Session& session) noexcept = 0;
    // The link's keys must rotate by replacing the connection: open a new one, then drain this.
    virtual void on_session_rotation_due(Session& session, const char* why) noexcept = 0;

  protected:
    ~SessionOwner() = default;
};

class Session final : private Rearmable {
  public:
    enum class Role : uint8_t { Initiator, Terminator };
    enum class State : uint8_t { Hello, Open, Draining, Closing, Closed };

    Session(Context& ctx, SessionOwner* owner, std::unique_ptr<Link> link, Role role,
            std::string_view node_name) noexcept;
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Sends the preface and HELLO and starts reading.
    void start() noexcept;
    // Opens a stream (initiator side, or terminator pushing); nullptr when the session is not
    // open, is draining, or the peer's stream limit is reached.
    [[nodiscard]] Stream* open_stream(proto::tunnel::StreamProtocol protocol,
                                      std::string_view routing_key,
                                      StreamHandler* handler) noexcept;
    // Writes everything queued (control first, then data round-robin). Called once per loop
    // iteration by the shard for sessions marked dirty.
    void flush() noexcept;
    // Sends GOAWAY and closes once every stream has finished.
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
    [[nodiscard]] uint32_t peer_capabilities() const noexcept { return peer_capabilities_; }
    [[nodiscard]] const char* link_kind() const noexcept { return link_->kind(); }

    // Shard bookkeeping: sessions with queued output are flushed once per iteration. Membership
    // of the shard's dirty list is its own flag: flush() also runs from write completions, and
    // a session must never be linked twice.
    Session* next_dirty = nullptr;
    bool in_dirty_list = false;

  private:
    friend struct SessionFrameSink;
    // Frame events (through SessionFrameSink).
    bool on_hello(const proto::tunnel::Hello& hello) noexcept;
    bool on_open(uint32_t stream_id, const proto::tunnel::Open& open) noexcept;
    bool on_data(uint32_t stream_id, std::span<const std::byte> piece, bool fin) noexcept;
    bool on_window(uint32_t stream_id, uint32_t increment) noexcept;
    bool on_reset(uint32_t stream_id, proto::tunnel::ErrorCode code) noexcept;
    bool on_ping(bool ack, uint64_t opaque) noexcept;
    bool on_goaway(uint32_t last_stream_id, proto::tunnel::ErrorCode code,
                   std::string_view debug) noexcept;

    friend class Stream;
    class LinkEvents;

    // Stream -> Session.
    void stream_has_output(Stream& s) noexcept;
    void stream_consumed(Stream& s, uint32_t n) noexcept;
    void stream_consumed_conn_only(uint32_t n) noexcept;
    void stream_reset_locally(Stream& s, proto::tunnel::ErrorCode code) noexcept;
    void stream_maybe_done(Stream& s) noexcept;

    // Link -> Session.
    void link_read(buf::Chunk&& bytes) noexcept;
    void link_written() noexcept;
    void link_down(const char* reason, int err) noexcept;
    void link_quiescent() noexcept;
    void link_established() noexcept;
    void send_hello() noexcept;

    void mark_dirty() noexcept;
    [[nodiscard]] std::span<std::byte> control_space(size_t n) noexcept;
    void control_commit(size_t n) noexcept;
    // Sends the increment `window` returned; when no buffer is free it is owed instead.
    void send_credit(uint32_t stream_id, proto::tunnel::RecvWindow& window,
                     uint32_t increment) noexcept;
    void send_reset(uint32_t stream_id, proto::tunnel::ErrorCode code) noexcept;
    void send_drain_goaway() noexcept;
    // Encode one frame into the control buffer; false (nothing written) when no buffer is free.
    [[nodiscard]] bool write_reset(uint32_t stream_id, proto::tunnel::ErrorCode code) noexcept;
    [[nodiscard]] bool write_ping(bool ack, uint64_t opaque) noexcept;
    [[nodiscard]] bool write_goaway(proto::tunnel::ErrorCode code, std::string_view debug) noexcept;
    [[nodiscard]] bool owes_control() const noexcept;
    // Encodes what is owed, as far as buffers allow; parks the session for the rest.
    void pay_owed_control() noexcept;
    // Buffers may be back (Rearmable): pay what is owed and write.
    void rearm() noexcept override;
    void fail(proto::tunnel::ErrorCode code, const char* detail) noexcept;
    void reset_all_streams(proto::tunnel::ErrorCode code) noexcept;
    void destroy_stream(Stream* s) noexcept;
    void ready_push(Stream* s) noexcept;
    Stream* ready_pop() noexcept;
    void ready_remove(Stream* s) noexcept;
    [[nodiscard]] bool emit_data_frame(Stream& s) noexcept;
    [[nodiscard]] bool stream_sendable(const Stream& s) const noexcept;
    void maybe_finish_drain() noexcept;

    Context& ctx_;
    SessionOwner* owner_;
    std::unique_ptr<Link> link_;
    std::unique_ptr<LinkEvents> link_events_;
    Role role_;
    State state_ = State::Hello;
    std::string node_name_;
    std::string peer_name_;
    uint32_t peer_capabilities_ = 0;
    SessionFrameSink sink_{this};
    proto::tunnel::FrameDecoder<SessionFrameSink> decoder_;
    buf::Chunk* reading_ = nullptr;  // the chunk being decoded, to slice DATA from

    absl::flat_hash_map<uint32_t, Stream*> streams_;
    base::ObjectPool<Stream> stream_pool_;
    uint32_t next_stream_id_;
    uint32_t last_peer_stream_id_ = 0;

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
    std::optional<uint64_t> owed_ping_ack_;
    std::vector<std::pair<uint32_t, proto::tunnel::ErrorCode>> owed_resets_;
    Stream* ready_head_ = nullptr;
    Stream* ready_tail_ = nullptr;
    WriteBatch batch_;
    bool writing_ = false;
    bool close_after_flush_ = false;
    bool link_closed_ = false;

    uint64_t last_ping_ns_ = 0;
    uint64_t ping_outstanding_ns_ = 0;
};

}  // namespace ferry::tunnel
