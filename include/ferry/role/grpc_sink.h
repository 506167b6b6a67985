// GrpcSink: the terminator's built-in gRPC service when no grpc upstream is configured — the
// lane7 service of proto/lane7.proto. Send answers its one Message with one Result; Stream
// answers each Message with a Result, in order. A Result carries the on_receive_terminator
// hook's reply (by default the message's payload), the trail of every hop (the OPEN's, then this
// node) and the shard. Calls end with trailers: grpc-status 0, or UNIMPLEMENTED for another
// method, INTERNAL for a message that is not a lane7 Message, RESOURCE_EXHAUSTED over the
// message limit. It shows a gRPC path end to end without an upstream server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ferry/base/log.h"
#include "ferry/base/object_pool.h"
#include "ferry/loop/context.h"
#include "ferry/proto/grpc/status.h"
#include "ferry/role/hooks.h"
#include "ferry/role/metrics.h"
#include "ferry/role/protocol.h"
#include "ferry/role/result_log.h"

namespace ferry::role {

struct GrpcSinkOptions {
    uint32_t max_message_size = uint32_t{4} << 20;  // --grpc-max-message
    std::string node_name;                          // appended to each result's trail
    size_t shard_index = 0;
    ResultLog* results = nullptr;         // each answer, shortened, for GET /output (may be null)
    const HooksLibrary* hooks = nullptr;  // on_receive_terminator (may be null)
};

class GrpcSink;

class GrpcSinkStream final : public tunnel::StreamHandler,
                             public loop::Retirable,
                             private io::BufferWaiter {
  public:
    GrpcSinkStream(GrpcSink& sink, tunnel::Stream& stream) noexcept;

    // Takes the method and trail from the OPEN and accepts the stream; false when the OPEN_ACK
    // could not be made (the caller refuses the stream).
    [[nodiscard]] bool start(const proto::tunnel::Open& open) noexcept;

    void on_stream_data(buf::Chunk&& data, proto::tunnel::DataFlags flags) noexcept override;
    void on_stream_fin() noexcept override;
    void on_stream_reset(proto::tunnel::ErrorCode code) noexcept override;
    void on_stream_writable() noexcept override { pump(); }
    void retry_after_buffer_wait() noexcept override { pump(); }
    void retire() noexcept override;

    GrpcSinkStream* live_prev = nullptr;
    GrpcSinkStream* live_next = nullptr;

  private:
    void answer_message() noexcept;
    // Writes queued results while the stream takes them, then the trailers once the request
    // ended (or the call failed).
    void pump() noexcept;
    // Ends the call with `status` after the results already queued.
    void end_with(proto::grpc::StatusCode status, std::string message) noexcept;
    void done() noexcept;

    // A client may queue this many messages before it reads their results.
    static constexpr size_t kMaxReplies = 64;

    GrpcSink& sink_;
    tunnel::Stream* stream_;
    std::vector<std::string> trail_;
    bool unary_ = false;
    uint32_t messages_ = 0;
    std::string message_;  // the message being collected
    std::vector<std::string> replies_;
    size_t reply_offset_ = 0;
    uint64_t owed_credit_ = 0;
    GrpcCallMeter meter_;
    proto::grpc::StatusCode status_ = proto::grpc::StatusCode::Ok;
    std::string status_message_;
    bool ending_ = false;  // trailers go once replies_ is empty
    bool request_ended_ = false;
    bool retired_ = false;
};

class GrpcSink final : public UpstreamProtocol {
  public:
    GrpcSink(loop::Context& ctx, Metrics& metrics, GrpcSinkOptions options) noexcept;
    ~GrpcSink() override;

    [[nodiscard]] tunnel::OpenDecision open(tunnel::Session& session, tunnel::Stream& stream,
                                            const proto::tunnel::Open& open) noexcept override;
    void drain() noexcept override { draining_ = true; }
    [[nodiscard]] bool idle() const noexcept override { return true; }

  private:
    friend class GrpcSinkStream;

    void unlink(GrpcSinkStream* s) noexcept;
    // Up to `want` bytes of reply space (a slice of a shared buffer), or empty when the pool is.
    [[nodiscard]] buf::Chunk carve(size_t want) noexcept;

    base::ObjectPool<GrpcSinkStream> streams_;
    loop::Context& ctx_;
    Metrics& metrics_;
    GrpcSinkOptions options_;
    ShardHooks hooks_;
    base::LogLimiter log_;
    GrpcSinkStream* live_ = nullptr;
    buf::Chunk arena_;  // the buffer replies are carved from
    uint32_t arena_used_ = 0;
    bool draining_ = false;
};

}  // namespace ferry::role
