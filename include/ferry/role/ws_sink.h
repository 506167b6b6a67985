// WsSink: the terminator's built-in service for WebSocket streams when no ws upstream is
// configured. It answers every message with one Text message, a JSON object naming what came
// and the path it took: {"message", "binary", "trail": [nodes from the OPEN..., this node],
// "shard"}; binary messages are echoed in base64. A Close message is answered with the same
// Close and ends the stream. It shows a WebSocket path end to end without an upstream server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ferry/base/log.h"
#include "ferry/base/object_pool.h"
#include "ferry/loop/context.h"
#include "ferry/role/hooks.h"
#include "ferry/role/metrics.h"
#include "ferry/role/protocol.h"
#include "ferry/role/result_log.h"

namespace ferry::role {

struct WsSinkOptions {
    uint64_t max_message_size = uint64_t{16} << 20;  // --ws-max-message
    std::string node_name;                           // appended to each reply's trail
    size_t shard_index = 0;
    ResultLog* results = nullptr;         // each answer, shortened, for GET /output (may be null)
    const HooksLibrary* hooks = nullptr;  // on_receive_terminator (may be null)
};

class WsSink;

// One stream served by the sink.
class WsSinkStream final : public tunnel::StreamHandler,
                           public loop::Retirable,
                           private io::BufferWaiter {
  public:
    WsSinkStream(WsSink& sink, tunnel::Stream& stream) noexcept;

    // Takes what the reply needs from the OPEN and accepts the stream; false when the OPEN_ACK
    // could not be made (the caller refuses the stream).
    [[nodiscard]] bool start(const proto::tunnel::Open& open) noexcept;

    void on_stream_data(buf::Chunk&& data, proto::tunnel::DataFlags flags) noexcept override;
    void on_stream_fin() noexcept override;
    void on_stream_reset(proto::tunnel::ErrorCode code) noexcept override;
    void on_stream_writable() noexcept override { pump(); }
    void retry_after_buffer_wait() noexcept override { pump(); }
    void retire() noexcept override;

    // The sink's list of its streams, so it can free those still open when it goes away.
    WsSinkStream* live_prev = nullptr;
    WsSinkStream* live_next = nullptr;

  private:
    struct Reply {
        std::string bytes;
        proto::tunnel::MessageKind kind;
    };
    void answer_message() noexcept;
    // Asks the on_receive_terminator hook; true when it replaced or dropped the answer.
    [[nodiscard]] bool hooked_reply() noexcept;
    // Writes queued replies while the stream takes them; returns held-back credit when all are
    // written, and ends the stream when both directions are done.
    void pump() noexcept;
    void fail(proto::tunnel::ErrorCode code, const char* reason) noexcept;
    void done() noexcept;

    // A peer may queue this many answered messages before it reads the replies.
    static constexpr size_t kMaxReplies = 64;

    WsSink& sink_;
    tunnel::Stream* stream_;
    std::vector<std::string> trail_;
    std::string path_;     // the client's request path, for the hook
    std::string message_;  // the message being collected
    bool in_message_ = false;
    proto::tunnel::MessageKind kind_ = proto::tunnel::MessageKind::Binary;
    // A FIFO of replies not yet written: a vector, not a deque, because an empty deque already
    // holds a 512-byte block, and most streams have no reply waiting most of the time.
    std::vector<Reply> replies_;
    size_t reply_offset_ = 0;  // of replies_.front() already written
    // Credit is held back while replies wait, so a peer that does not read them is stopped by
    // its window instead of growing this queue.
    uint64_t owed_credit_ = 0;
    bool close_answered_ = false;
    bool finished_ = false;
    bool fin_from_peer_ = false;
    bool retired_ = false;
};

class WsSink final : public UpstreamProtocol {
  public:
    WsSink(loop::Context& ctx, Metrics& metrics, WsSinkOptions options) noexcept;
    // At shard exit, after the sessions: frees the streams still open (their replies, trails).
    ~WsSink() override;

    [[nodiscard]] tunnel::OpenDecision open(tunnel::Session& session, tunnel::Stream& stream,
                                            const proto::tunnel::Open& open) noexcept override;
    void drain() noexcept override { draining_ = true; }
    [[nodiscard]] bool idle() const noexcept override { return true; }

  private:
    friend class WsSinkStream;

    void unlink(WsSinkStream* s) noexcept;
    // Up to `want` bytes of reply space (a slice of a shared buffer), or empty when the pool is.
    [[nodiscard]] buf::Chunk carve(size_t want) noexcept;

    // First, so it is destroyed last: streams still open at shard exit are abandoned with it.
    base::ObjectPool<WsSinkStream> streams_;
    loop::Context& ctx_;
    Metrics& metrics_;
    WsSinkOptions options_;
    ShardHooks hooks_;
    base::LogLimiter log_;
    WsSinkStream* live_ = nullptr;
    buf::Chunk arena_;  // the buffer replies are carved from
    uint32_t arena_used_ = 0;
    bool draining_ = false;
};

}  // namespace ferry::role
