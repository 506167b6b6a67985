#include "ferry/role/ws_sink.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"

namespace ferry::role {

namespace pt = proto::tunnel;

WsSinkStream::WsSinkStream(WsSink& sink, tunnel::Stream& stream) noexcept
    : sink_(sink), stream_(&stream) {}

bool WsSinkStream::start(const pt::Open& open) noexcept {
    std::string subprotocol;
    for (const pt::MetadataEntry& e : open.metadata) {
        if (e.first == "trail") {
            trail_.emplace_back(e.second);
        } else if (e.first == ":path") {
            path_ = e.second;
        } else if (e.first == "sec-websocket-protocol" && subprotocol.empty()) {
            // The client's offer, in its order: the sink speaks whatever it offered first.
            std::string_view first = e.second.substr(0, e.second.find(','));
            while (!first.empty() && (first.front() == ' ' || first.front() == '\t')) {
                first.remove_prefix(1);
            }
            while (!first.empty() && (first.back() == ' ' || first.back() == '\t')) {
                first.remove_suffix(1);
            }
            subprotocol = first;
        }
    }
    if (subprotocol.empty()) {
        return stream_->accept();
    }
    const pt::MetadataEntry ack[] = {{"sec-websocket-protocol", subprotocol}};
    return stream_->accept(ack);
}

void WsSinkStream::on_stream_data(buf::Chunk&& data, pt::DataFlags flags) noexcept {
    if (stream_ == nullptr) {
        return;
    }
    const uint32_t size = data.size();
    if (!in_message_ ||
        (flags.kind() == pt::MessageKind::Close && kind_ != pt::MessageKind::Close)) {
        // A new message; or a Close cutting into an open one, which is abandoned (the client
        // closed between its fragments; spec §6.3).
        message_.clear();
        kind_ = flags.kind();
    }
    in_message_ = !flags.end_message();
    if (message_.size() + size > sink_.options_.max_message_size) {
        fail(pt::ErrorCode::Cancel, "message over --ws-max-message");
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
            fail(pt::ErrorCode::Cancel, "too many messages wait for their replies");
            return;
        }
        answer_message();
        pump();
    }
}

void WsSinkStream::answer_message() noexcept {
    if (kind_ == pt::MessageKind::Close) {
        // The same code and reason back: the closing handshake completes end to end.
        replies_.push_back({std::move(message_), pt::MessageKind::Close});
        close_answered_ = true;
    } else if (sink_.hooks_.has_on_receive_terminator() && hooked_reply()) {
        // The hook answered (or dropped the message) itself.
    } else {
        const bool binary = kind_ != pt::MessageKind::Text;
        nlohmann::json reply;
        reply["message"] = binary ? absl::Base64Escape(message_) : message_;
        reply["binary"] = binary;
        nlohmann::json trail = nlohmann::json::array();
        for (const std::string& node : trail_) {
            trail.push_back(node);
        }
        trail.push_back(sink_.options_.node_name);
        reply["trail"] = std::move(trail);
        reply["shard"] = sink_.options_.shard_index;
        if (ResultLog* log = sink_.options_.results; log != nullptr) {
            // The log keeps what identifies the result, not whole 16 MiB messages.
            nlohmann::json logged = reply;
            logged["source"] = "sink";
            logged["bytes"] = message_.size();
            if (message_.size() > 1024) {
                logged["message"] = preview(reply["message"].get_ref<const std::string&>(), 1024);
            }
            log->record(sink_.options_.shard_index,
                        logged.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        }
        // replace: bytes that are not UTF-8 (a peer other than our initiator) must not abort.
        replies_.push_back({reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                            pt::MessageKind::Text});
    }
    message_.clear();
}

bool WsSinkStream::hooked_reply() noexcept {
    const bool binary = kind_ != pt::MessageKind::Text;
    std::vector<ShardHooks::Header> headers;
    headers.reserve(trail_.size() + 2);
    headers.emplace_back(":path", path_);
    for (const std::string& node : trail_) {
        headers.emplace_back("trail", node);
    }
    headers.emplace_back("binary", binary ? "1" : "0");
    const ShardHooks::Outcome o = sink_.hooks_.on_receive_terminator(message_, headers);
    switch (o.action) {
        case ShardHooks::Action::Pass:
            return false;
        case ShardHooks::Action::Drop:
            return true;
        case ShardHooks::Action::Replace:
            // Copied now: the hook's bytes are only valid until its next call.
            replies_.push_back({std::string(o.replacement),
                                binary ? pt::MessageKind::Binary : pt::MessageKind::Text});
            return true;
    }
    return false;
}

void WsSinkStream::pump() noexcept {
    while (stream_ != nullptr && !replies_.empty()) {
        Reply& r = replies_.front();
        do {
            if (stream_->should_pause()) {
                return;  // on_stream_writable() comes back here
            }
            buf::Chunk chunk;
            const size_t left = r.bytes.size() - reply_offset_;
            if (left > 0) {
                chunk = sink_.carve(left);
                if (chunk.empty()) {
                    // Every buffer is in use: wait for one (end of a later loop iteration)
                    // rather than drop the reply; the peer's window bounds what piles up.
                    sink_.ctx_.buffer_waits.park(this);
                    return;
                }
                std::memcpy(chunk.data(), r.bytes.data() + reply_offset_, chunk.size());
                reply_offset_ += chunk.size();
            }
            const bool last = reply_offset_ == r.bytes.size();
            stream_->write(std::move(chunk), pt::DataFlags::make(false, last, r.kind));
        } while (reply_offset_ < r.bytes.size());
        replies_.erase(replies_.begin());
        reply_offset_ = 0;
    }
    if (stream_ == nullptr) {
        return;
    }
    if (owed_credit_ > 0) {
        stream_->consumed(static_cast<uint32_t>(owed_credit_));
        owed_credit_ = 0;
    }
    if (!finished_ && (close_answered_ || fin_from_peer_)) {
        stream_->finish();
        finished_ = true;
    }
    if (finished_ && fin_from_peer_) {
        tunnel::Stream* s = stream_;
        stream_ = nullptr;
        s->detach();
        done();
    }
}

void WsSinkStream::on_stream_fin() noexcept {
    fin_from_peer_ = true;
    pump();
}

void WsSinkStream::on_stream_reset(pt::ErrorCode) noexcept {
    stream_ = nullptr;
    done();
}

void WsSinkStream::fail(pt::ErrorCode code, const char* reason) noexcept {
    FERRY_LOG_LIMITED(sink_.log_, sink_.ctx_.now_ns, Warn, "websocket sink: stream reset: %s",
                      reason);
    if (stream_ != nullptr) {
        tunnel::Stream* s = stream_;
        stream_ = nullptr;
        s->reset(code);
    }
    done();
}

void WsSinkStream::done() noexcept {
    sink_.ctx_.buffer_waits.cancel(this);
    if (!retired_) {
        retired_ = true;
        sink_.ctx_.defer_retire(this);
    }
}

void WsSinkStream::retire() noexcept {
    sink_.metrics_.connections_active.add(-1);
    sink_.unlink(this);
    sink_.streams_.destroy(this);
}

WsSink::WsSink(loop::Context& ctx, Metrics& metrics, WsSinkOptions options) noexcept
    : ctx_(ctx),
      metrics_(metrics),
      options_(std::move(options)),
      hooks_(options_.hooks, static_cast<uint32_t>(options_.shard_index), "terminator",
             options_.node_name) {}

buf::Chunk WsSink::carve(size_t want) noexcept {
    // Replies are small next to a pool buffer (64 KiB): many share one, each a slice that keeps
    // it alive until the tunnel wrote it, so thousands of answers in flight take a few buffers.
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

WsSink::~WsSink() {
    // The shard forgets pending retirements after its services are gone, so none of these is
    // touched again.
    while (live_ != nullptr) {
        WsSinkStream* s = live_;
        unlink(s);
        streams_.destroy(s);
    }
}

void WsSink::unlink(WsSinkStream* s) noexcept {
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

tunnel::OpenDecision WsSink::open(tunnel::Session&, tunnel::Stream& stream,
                                  const pt::Open& open) noexcept {
    if (draining_) {
        return tunnel::OpenDecision::refuse(pt::ErrorCode::RefusedStream, "draining");
    }
    WsSinkStream* s = streams_.create(*this, stream);
    if (!s->start(open)) {
        streams_.destroy(s);
        return tunnel::OpenDecision::refuse(pt::ErrorCode::InternalError,
                                            "the OPEN_ACK could not be made");
    }
    metrics_.connections_accepted.add();
    metrics_.connections_active.add(1);
    s->live_next = live_;
    if (live_ != nullptr) {
        live_->live_prev = s;
    }
    live_ = s;
    return tunnel::OpenDecision::accept(s);
}

}  // namespace ferry::role
