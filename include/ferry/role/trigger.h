// Triggers: messages the initiator sends through the tunnel itself — the auto-trigger once the
// tunnel is first up (--auto-trigger N), and POST /trigger on the admin port (the body is the
// message). --blueprint picks what each is. ws: one WebSocket stream to the terminator, whose
// sink (or ws upstream) answers: one Text message out, one reply back, then the closing
// handshake. grpc: one lane7 Send call (proto/lane7.proto) as the grpc:// listener would open it:
// one Message out, one Result back, then TRAILERS with grpc-status. A call that gets no reply
// (no tunnel, refused, reset, a grpc-status other than OK, --trigger-timeout) is counted and
// logged as failed, never as sent. Results, with their trails, go to the ResultLog behind
// GET /output. Shard 0 only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/base/object_pool.h"
#include "ferry/loop/context.h"
#include "ferry/role/admin_endpoint.h"
#include "ferry/role/hooks.h"
#include "ferry/role/protocol.h"
#include "ferry/role/result_log.h"
#include "ferry/tunnel/stream.h"

namespace ferry::role {

struct TriggerOptions {
    uint32_t auto_count = 5;  // messages of the auto-trigger; 0 = none
    uint64_t timeout_ns = 10'000'000'000;
    uint64_t max_reply = 1 << 20;  // longest reply kept
    // WebSocket (the default) or Grpc: the stream each trigger is (--blueprint).
    proto::tunnel::StreamProtocol protocol = proto::tunnel::StreamProtocol::WebSocket;
    std::string node_name;  // the first hop of the trail
    size_t shard_index = 0;
    ResultLog* results = nullptr;         // may be null
    const HooksLibrary* hooks = nullptr;  // on_trigger (may be null)
};

class Triggers;

// One message and its reply.
class TriggerCall final : public tunnel::StreamHandler, public loop::Retirable {
  public:
    // `reply` (null for the auto-trigger) is answered when the call ends.
    TriggerCall(Triggers& owner, uint32_t seq, AdminReply* reply, bool auto_trigger) noexcept;

    // Opens the stream and sends `payload`; false (the call already ended, as failed) when there
    // was no tunnel or no buffer.
    bool start(std::string payload) noexcept;
    // The deadline passed without a reply.
    void expire() noexcept;
    // The admin client went away: the call goes on, its answer goes only to the log.
    void forget_reply() noexcept { reply_ = nullptr; }
    [[nodiscard]] AdminReply* reply() const noexcept { return reply_; }
    [[nodiscard]] uint64_t deadline_ns() const noexcept { return deadline_ns_; }
    [[nodiscard]] bool ended() const noexcept { return ended_; }
    [[nodiscard]] bool auto_trigger() const noexcept { return auto_; }
    [[nodiscard]] uint32_t seq() const noexcept { return seq_; }

    void on_stream_data(buf::Chunk&& data, proto::tunnel::DataFlags flags) noexcept override;
    void on_stream_fin() noexcept override;
    void on_stream_trailers(const proto::tunnel::MetadataView& trailers) noexcept override;
    void on_stream_reset(proto::tunnel::ErrorCode code) noexcept override;
    void on_stream_writable() noexcept override {}
    void retire() noexcept override;

  private:
    // Writes `bytes` as one message of `kind` (in pool-sized pieces); false when out of buffers.
    bool send_message(std::string_view bytes, proto::tunnel::MessageKind kind) noexcept;
    // Opens the stream of the blueprint and sends the request; false when out of buffers.
    [[nodiscard]] bool open_websocket() noexcept;
    [[nodiscard]] bool open_grpc() noexcept;
    // Reports the outcome once: to the admin client, the log and the owner.
    void end(bool ok, std::string_view error, int status) noexcept;
    // The stream is gone or done with: the call frees itself.
    void release() noexcept;

    Triggers& owner_;
    uint32_t seq_;
    AdminReply* reply_;
    tunnel::Stream* stream_ = nullptr;
    std::string sent_;
    std::string received_;
    uint64_t deadline_ns_ = 0;
    bool auto_;
    bool grpc_ = false;       // a lane7 Send call, not a WebSocket message
    bool got_reply_ = false;  // grpc: the Result message is whole (the status comes after)
    int grpc_status_ = -1;    // grpc: the call's grpc-status once its trailers came
    bool dropped_ = false;    // the on_trigger hook dropped it: not sent, not a failure to send
    bool ended_ = false;
    bool finished_ = false;  // our Close went out and our side is finished
    bool released_ = false;
};

class Triggers final : public AdminEndpoint {
  public:
    // `ctx` and `opener` (the initiator) outlive it.
    Triggers(loop::Context& ctx, StreamOpener& opener, TriggerOptions options) noexcept;
    ~Triggers() override;

    // A tunnel connection became usable: the first time, the auto-trigger starts.
    void on_tunnel_usable() noexcept;
    void tick(uint64_t now_ns) noexcept;
    [[nodiscard]] bool idle() const noexcept { return live_.empty(); }

    // POST /trigger: the body (JSON) is the message; the answer is its result and trail.
    void serve(std::string_view method, std::string_view query, std::string_view body,
               AdminReply& reply) noexcept override;
    void cancel(AdminReply& reply) noexcept override;

  private:
    friend class TriggerCall;
    void on_call_ended(const TriggerCall& call, bool ok, std::string_view error) noexcept;
    void on_call_released(TriggerCall* call) noexcept;

    base::ObjectPool<TriggerCall> calls_;
    loop::Context& ctx_;
    StreamOpener& opener_;
    TriggerOptions options_;
    ShardHooks hooks_;
    std::vector<TriggerCall*> live_;
    uint32_t next_seq_ = 1;
    bool auto_started_ = false;
    uint32_t auto_ended_ = 0;
    uint32_t auto_sent_ = 0;
};

}  // namespace ferry::role
