#include "ferry/role/grpc_sink.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "ferry/proto/grpc/lane7.h"

namespace ferry::role {

namespace pt = proto::tunnel;
namespace grpc = proto::grpc;

GrpcSinkStream::GrpcSinkStream(GrpcSink& sink, tunnel::Stream& stream) noexcept
    : sink_(sink), stream_(&stream) {}

bool GrpcSinkStream::start(const pt::Open& open) noexcept {
    std::string_view path;
    for (const pt::MetadataEntry& e : open.metadata) {
        if (e.first == "trail") {
            trail_.emplace_back(e.second);
        } else if (e.first == ":path") {
            path = e.second;
        }
    }
    trail_.push_back(sink_.options_.node_name);
    meter_.start(sink_.metrics_.grpc_sink, sink_.ctx_.now_ns);
    const pt::MetadataEntry ack[] = {{"content-type", "application/grpc"},
                                     {"grpc-accept-encoding", "identity"}};
    if (!stream_->accept(ack)) {
        return false;
    }
    if (path == grpc::lane7::kSendPath) {
        unary_ = true;
    } else if (path != grpc::lane7::kStreamPath) {
        FERRY_LOG_LIMITED(sink_.log_, sink_.ctx_.now_ns, Info, "grpc sink: unknown method %.*s",
                          static_cast<int>(std::min<size_t>(path.size(), 200)), path.data());
        // Answered at the end of this loop iteration, once the session holds the stream (a
        // stream is not ended inside its own OPEN).
        ending_ = true;
        status_ = grpc::StatusCode::Unimplemented;
        status_message_ = "the built-in sink serves ferry.lane7.Lane7/Send and /Stream only";
        sink_.ctx_.buffer_waits.park(this);
    }
    return true;
}

void GrpcSinkStream::on_stream_data(buf::Chunk&& data, pt::DataFlags flags) noexcept {
    if (stream_ == nullptr) {
        return;
    }
    const uint32_t size = data.size();
    if (ending_) {
        stream_->consumed(size);  // the answer is decided; what still comes is dropped
        return;
    }
    if (flags.kind() == pt::MessageKind::Compressed) {
        stream_->consumed(size);
        end_with(grpc::StatusCode::Unimplemented,
                 "compressed messages are not served by the built-in sink (identity only)");
        return;
    }
    if (message_.size() + size > sink_.options_.max_message_size) {
        stream_->consumed(size);
        end_with(grpc::StatusCode::ResourceExhausted, "message larger than --grpc-max-message");
        return;
    }
    message_.append(reinterpret_cast<const char*>(data.data()), size);
    data.reset();
    if (replies_.empty()) {
        stream_->consumed(size);
    } else {
        owed_credit_ += size;
    }
    if (flags.end_message()) {
        if (replies_.size() >= kMaxReplies) {
            end_with(grpc::StatusCode::ResourceExhausted,
                     "too many messages wait for their results");
            return;
        }
        answer_message();
        pump();
    }
}

void GrpcSinkStream::answer_message() noexcept {
    ++messages_;
    meter_.message_in();
    if (unary_ && messages_ > 1) {
        end_with(grpc::StatusCode::Internal, "Send takes one message");
        return;
    }
    std::string_view payload;
    if (!grpc::lane7::decode_message(
            {reinterpret_cast<const std::byte*>(message_.data()), message_.size()}, &payload)) {
        end_with(grpc::StatusCode::Internal, "the message is not a lane7 Message");
        return;
    }
    std::string_view result = payload;
    const char* source = "sink";
    if (sink_.hooks_.has_on_receive_terminator()) {
        std::vector<ShardHooks::Header> headers;
        headers.reserve(trail_.size() + 1);
        headers.emplace_back(":path", unary_ ? grpc::lane7::kSendPath : grpc::lane7::kStreamPath);
        for (size_t i = 0; i + 1 < trail_.size(); ++i) {
            headers.emplace_back("trail", trail_[i]);
        }
        const ShardHooks::Outcome o = sink_.hooks_.on_receive_terminator(payload, headers);
        if (o.action == ShardHooks::Action::Drop) {
            message_.clear();
            return;  // no result for this one
        }
        if (o.action == ShardHooks::Action::Replace) {
            result = o.replacement;  // copied below, before the hook's next call
            source = "hook";
        }
    }
    std::string reply;
    grpc::lane7::encode_result(result, trail_, static_cast<uint32_t>(sink_.options_.shard_index),
                               &reply);
    if (ResultLog* log = sink_.options_.results; log != nullptr) {
        nlohmann::json logged;
        const std::string text(result);
        logged["message"] = preview(text, 1024);
        logged["trail"] = trail_;
        logged["shard"] = sink_.options_.shard_index;
        logged["source"] = source;
        logged["protocol"] = "grpc";
        logged["bytes"] = result.size();
        log->record(sink_.options_.shard_index,
                    logged.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    replies_.push_back(std::move(reply));
    message_.clear();
}

void GrpcSinkStream::end_with(grpc::StatusCode status, std::string message) noexcept {
    if (ending_) {
        return;
    }
    if (status != grpc::StatusCode::Ok) {
        FERRY_LOG_LIMITED(sink_.log_, sink_.ctx_.now_ns, Info, "grpc sink: call ends with %s: %s",
                          std::string(grpc::status_name(status)).c_str(), message.c_str());
    }
    ending_ = true;
    status_ = status;
    status_message_ = std::move(message);
    message_.clear();
    pump();
}

void GrpcSinkStream::pump() noexcept {
    while (stream_ != nullptr && !replies_.empty()) {
        std::string& r = replies_.front();
        do {
            if (stream_->should_pause()) {
                return;  // on_stream_writable() comes back here
            }
            buf::Chunk chunk;
            const size_t left = r.size() - reply_offset_;
            if (left > 0) {
                chunk = sink_.carve(left);
                if (chunk.empty()) {
                    sink_.ctx_.buffer_waits.park(this);
                    return;
                }
                std::memcpy(chunk.data(), r.data() + reply_offset_, chunk.size());
                reply_offset_ += chunk.size();
            }
            const bool last = reply_offset_ == r.size();
            stream_->write(std::move(chunk), pt::DataFlags::make(false, last));
        } while (reply_offset_ < r.size());
        replies_.erase(replies_.begin());
        reply_offset_ = 0;
        meter_.message_out();
    }
    if (stream_ == nullptr) {
        return;
    }
    if (owed_credit_ > 0) {
        stream_->consumed(static_cast<uint32_t>(owed_credit_));
        owed_credit_ = 0;
    }
    if (!ending_ && request_ended_) {
        if (unary_ && messages_ != 1) {
            status_ = grpc::StatusCode::Internal;
            status_message_ = "Send takes one message";
        }
        ending_ = true;
    }
    if (!ending_) {
        return;
    }
    const pt::MetadataEntry trailers[] = {
        {"grpc-status", grpc::status_text(status_)},
        {"grpc-message", status_message_},
    };
    const size_t n = status_message_.empty() ? 1 : 2;
    meter_.end(status_, sink_.ctx_.now_ns);
    tunnel::Stream* s = stream_;
    stream_ = nullptr;
    if (!s->finish_with_trailers({trailers, n})) {
        s->reset(pt::ErrorCode::InternalError);
        done();
        return;
    }
    // What the client still sends after our trailers is dropped by the session.
    s->detach();
    done();
}

void GrpcSinkStream::on_stream_fin() noexcept {
    request_ended_ = true;
    if (stream_ != nullptr && !message_.empty()) {
        end_with(grpc::StatusCode::Internal, "the request ended inside a message");
        return;
    }
    pump();
}

void GrpcSinkStream::on_stream_reset(pt::ErrorCode) noexcept {
    stream_ = nullptr;
    done();
}

void GrpcSinkStream::done() noexcept {
    sink_.ctx_.buffer_waits.cancel(this);
    if (!retired_) {
        retired_ = true;
        sink_.ctx_.defer_retire(this);
    }
}

void GrpcSinkStream::retire() noexcept {
    meter_.end(grpc::StatusCode::Cancelled, sink_.ctx_.now_ns);  // reset before its status
    sink_.metrics_.connections_active.add(-1);
    sink_.unlink(this);
    sink_.streams_.destroy(this);
}

GrpcSink::GrpcSink(loop::Context& ctx, Metrics& metrics, GrpcSinkOptions options) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      options_(std::move(options)),
      hooks_(options_.hooks, static_cast<uint32_t>(options_.shard_index), "terminator",
             options_.node_name) {}

GrpcSink::~GrpcSink() {
    while (live_ != nullptr) {
        GrpcSinkStream* s = live_;
        unlink(s);
        streams_.destroy(s);
    }
}

buf::Chunk GrpcSink::carve(size_t want) noexcept {
    // Results are small next to a pool buffer: many share one, each slice keeping it alive
    // until the tunnel wrote it.
    if (arena_.empty() || arena_used_ == arena_.size()) {
        arena_ = ctx_.local_pool.try_alloc();
        arena_used_ = 0;
        if (arena_.empty()) {
            return {};
        }
    }
    const auto n = static_cast<uint32_t>(std::min<size_t>(want, arena_.size() - arena_used_));
    buf::Chunk c = arena_.share(arena_used_, n);
    arena_used_ += n;
    return c;
}

void GrpcSink::unlink(GrpcSinkStream* s) noexcept {
    if (s->live_prev != nullptr) {
        s->live_prev->live_next = s->live_next;
    } else if (live_ == s) {
        live_ = s->live_next;
    }
    if (s->live_next != nullptr) {
        s->live_next->live_prev = s->live_prev;
    }
    s->live_prev = s->live_next = nullptr;
}

tunnel::OpenDecision GrpcSink::open(tunnel::Session&, tunnel::Stream& stream,
                                    const pt::Open& open) noexcept {
    if (draining_) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream, "draining");
    }
    GrpcSinkStream* s = streams_.create(*this, stream);
    metrics_.connections_active.add(1);
    s->live_next = live_;
    if (live_ != nullptr) {
        live_->live_prev = s;
    }
    live_ = s;
    if (!s->start(open)) {
        unlink(s);
        metrics_.connections_active.add(-1);
        streams_.destroy(s);
        return tunnel::OpenDecision::refuse(pt::ErrorCode::InternalError,
                                            "the OPEN_ACK could not be made");
    }
    metrics_.connections_accepted.add();
    return tunnel::OpenDecision::accept(s);
}

}  // namespace ferry::role
