#include "ferry/role/trigger.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_format.h"
#include "ferry/base/log.h"
#include "ferry/proto/grpc/lane7.h"
#include "ferry/proto/grpc/status.h"

namespace ferry::role {

namespace pt = proto::tunnel;
namespace grpc = proto::grpc;
using nlohmann::json;

namespace {

// The reply as JSON when it is JSON (the sink's answer), else as a string (an echo upstream).
json as_json(const std::string& text) {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    return j.is_discarded() ? json(text) : j;
}

std::string dump(const json& j) {
    // replace: a reply that is not UTF-8 must not abort the process.
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

TriggerCall::TriggerCall(Triggers& owner, uint32_t seq, AdminReply* reply,
                         bool auto_trigger) noexcept
    : owner_(owner), seq_(seq), reply_(reply), auto_(auto_trigger) {}

bool TriggerCall::start(std::string payload) noexcept {
    sent_ = std::move(payload);
    if (owner_.hooks_.has_on_trigger()) {
        const ShardHooks::Header headers[] = {{"source", auto_ ? "auto-trigger" : "trigger"}};
        const ShardHooks::Outcome o = owner_.hooks_.on_trigger(sent_, headers);
        if (o.action == ShardHooks::Action::Drop) {
            dropped_ = true;
            end(false, "dropped by the on_trigger hook", 200);
            release();
            return false;
        }
        if (o.action == ShardHooks::Action::Replace) {
            sent_ = std::string(o.replacement);  // copied: the hook's bytes are short-lived
        }
    }
    deadline_ns_ = owner_.ctx_.now_ns + owner_.options_.timeout_ns;
    grpc_ = owner_.options_.protocol == pt::StreamProtocol::Grpc;
    if (!(grpc_ ? open_grpc() : open_websocket())) {
        if (stream_ == nullptr) {
            end(false, "no usable tunnel connection", 503);
        } else {
            stream_->reset(pt::ErrorCode::InternalError);
            stream_ = nullptr;
            end(false, "no free buffer for the message", 503);
        }
        release();
        return false;
    }
    return true;
}

bool TriggerCall::open_websocket() noexcept {
    const pt::MetadataEntry metadata[] = {
        {":path", "/"},
        {"trail", owner_.options_.node_name},
        {"x-ferry-trigger", auto_ ? "auto" : "admin"},
    };
    stream_ = owner_.opener_.open_stream(pt::StreamProtocol::WebSocket, "/", metadata, this);
    return stream_ != nullptr && send_message(sent_, pt::MessageKind::Text);
}

bool TriggerCall::open_grpc() noexcept {
    // The OPEN a grpc:// listener makes for a client's call (grpc_server.cc): the method, the
    // client's metadata (here: what a gRPC client always sends), then this node in the trail.
    const pt::MetadataEntry metadata[] = {
        {":path", grpc::lane7::kSendPath},
        {"content-type", "application/grpc"},
        {"x-ferry-trigger", auto_ ? "auto" : "admin"},
        {"trail", owner_.options_.node_name},
    };
    stream_ = owner_.opener_.open_stream(pt::StreamProtocol::Grpc, "/", metadata, this);
    if (stream_ == nullptr) {
        return false;
    }
    // On the tunnel a gRPC message is its bytes with END_MESSAGE (no length prefix); a unary
    // request ends with our half-close.
    std::string request;
    grpc::lane7::encode_message(sent_, &request);
    if (!send_message(request, pt::MessageKind::Binary)) {
        return false;
    }
    stream_->finish();
    finished_ = true;
    return true;
}

bool TriggerCall::send_message(std::string_view bytes, pt::MessageKind kind) noexcept {
    buf::Pool& pool = owner_.ctx_.local_pool;
    do {
        buf::Chunk chunk = pool.try_alloc();
        if (chunk.empty()) {
            return false;
        }
        const auto n = static_cast<uint32_t>(std::min<size_t>(bytes.size(), chunk.size()));
        std::memcpy(chunk.data(), bytes.data(), n);
        bytes.remove_prefix(n);
        stream_->write(chunk.share(0, n), pt::DataFlags::make(false, bytes.empty(), kind));
    } while (!bytes.empty());
    return true;
}

void TriggerCall::on_stream_data(buf::Chunk&& data, pt::DataFlags flags) noexcept {
    const uint32_t size = data.size();
    if (stream_ == nullptr) {
        return;
    }
    stream_->consumed(size);
    if (ended_ || got_reply_ || flags.kind() == pt::MessageKind::Close) {
        return;  // the far side's half of the closing handshake, or a late extra message
    }
    if (grpc_ && flags.kind() != pt::MessageKind::Binary) {
        // We sent no grpc-accept-encoding but identity: a compressed Result is not ours to read.
        stream_->reset(pt::ErrorCode::Cancel);
        stream_ = nullptr;
        end(false, "the result came compressed (only identity is accepted)", 502);
        release();
        return;
    }
    if (received_.size() + size > owner_.options_.max_reply) {
        stream_->reset(pt::ErrorCode::Cancel);
        stream_ = nullptr;
        end(false, "reply larger than the trigger keeps", 502);
        release();
        return;
    }
    received_.append(reinterpret_cast<const char*>(data.data()), size);
    if (!flags.end_message()) {
        return;
    }
    if (grpc_) {
        got_reply_ = true;  // the call's outcome is the grpc-status of the trailers to come
        return;
    }
    end(true, {}, 200);
    // Our half of the closing handshake (1000, normal closure); the stream ends when the far
    // side answers it.
    const char close_normal[] = {'\x03', '\xe8'};
    if (send_message({close_normal, sizeof(close_normal)}, pt::MessageKind::Close)) {
        stream_->finish();
        finished_ = true;
    } else {
        stream_->reset(pt::ErrorCode::Cancel);
        stream_ = nullptr;
        release();
    }
}

void TriggerCall::on_stream_trailers(const pt::MetadataView& trailers) noexcept {
    if (!grpc_) {
        on_stream_fin();
        return;
    }
    std::optional<grpc::StatusCode> status;
    std::string_view message;
    for (const pt::MetadataEntry& e : trailers) {
        if (e.first == "grpc-status") {
            status = grpc::parse_status(e.second);
        } else if (e.first == "grpc-message") {
            message = e.second;
        }
    }
    if (!ended_) {
        grpc_status_ = status.has_value() ? static_cast<int>(*status) : -1;
        grpc::lane7::DecodedResult r;
        if (!status.has_value()) {
            end(false, "the call ended without a valid grpc-status", 502);
        } else if (*status != grpc::StatusCode::Ok) {
            end(false,
                absl::StrFormat("grpc-status %d (%s): %s", static_cast<int>(*status),
                                grpc::status_name(*status), message),
                502);
        } else if (!got_reply_) {
            end(false, "the call ended OK without a result", 502);
        } else if (!grpc::lane7::decode_result(
                       {reinterpret_cast<const std::byte*>(received_.data()), received_.size()},
                       &r)) {
            end(false, "the result is not a lane7 Result", 502);
        } else {
            // The Result as the ws sink's JSON answer reads, so /output is alike for both.
            json reply;
            reply["message"] = std::move(r.payload);
            reply["trail"] = std::move(r.trail);
            reply["shard"] = r.shard;
            reply["grpc_status"] = 0;
            received_ = dump(reply);
            end(true, {}, 200);
        }
    }
    // Both directions are over: our request ended when it was sent.
    stream_->detach();
    stream_ = nullptr;
    release();
}

void TriggerCall::on_stream_fin() noexcept {
    if (!ended_) {
        end(false,
            grpc_ ? "the far side ended the call without a status"
                  : "the far side ended the stream without a reply",
            502);
    }
    if (!finished_) {
        stream_->finish();
        finished_ = true;
    }
    stream_->detach();
    stream_ = nullptr;
    release();
}

void TriggerCall::on_stream_reset(pt::ErrorCode code) noexcept {
    stream_ = nullptr;
    if (!ended_) {
        end(false, absl::StrFormat("stream reset by the far side (%s)", pt::error_code_name(code)),
            502);
    }
    release();
}

void TriggerCall::expire() noexcept {
    if (ended_) {
        return;
    }
    end(false,
        absl::StrFormat("no reply within %u ms",
                        static_cast<unsigned>(owner_.options_.timeout_ns / 1'000'000)),
        504);
    if (stream_ != nullptr) {
        stream_->reset(pt::ErrorCode::Cancel);
        stream_ = nullptr;
    }
    release();
}

void TriggerCall::end(bool ok, std::string_view error, int status) noexcept {
    if (ended_) {
        return;
    }
    ended_ = true;
    json result;
    result["source"] = auto_ ? "auto-trigger" : "trigger";
    result["seq"] = seq_;
    result["protocol"] = grpc_ ? "grpc" : "websocket";
    result["ok"] = ok;
    if (dropped_) {
        result["dropped"] = true;
    }
    result["sent"] = as_json(preview(sent_, 4096));
    if (ok) {
        json reply = as_json(received_);
        if (reply.is_object() && reply.contains("trail")) {
            result["trail"] = reply["trail"];
        }
        result["result"] = std::move(reply);
    } else {
        result["error"] = std::string(error);
        if (grpc_status_ >= 0) {
            result["grpc_status"] = grpc_status_;
        }
    }
    if (owner_.options_.results != nullptr) {
        json logged = result;
        if (ok && received_.size() > 4096) {
            logged["result"] = preview(received_, 4096);  // the log keeps results small
        }
        owner_.options_.results->record(owner_.options_.shard_index, dump(logged));
    }
    if (reply_ != nullptr) {
        std::exchange(reply_, nullptr)->respond(status, "application/json", dump(result) + "\n");
    }
    owner_.on_call_ended(*this, ok, error);
}

void TriggerCall::release() noexcept {
    if (released_) {
        return;
    }
    released_ = true;
    owner_.on_call_released(this);
}

void TriggerCall::retire() noexcept { owner_.calls_.destroy(this); }

Triggers::Triggers(loop::Context& ctx, StreamOpener& opener, TriggerOptions options) noexcept
    : ctx_(ctx),
      opener_(opener),
      options_(std::move(options)),
      hooks_(options_.hooks, static_cast<uint32_t>(options_.shard_index), "initiator",
             options_.node_name) {}

Triggers::~Triggers() {
    // Shard exit: the sessions (and their streams) are gone already; answer who still waits and
    // free the calls (the pool does not run destructors of what it still holds).
    for (TriggerCall* c : live_) {
        if (AdminReply* r = c->reply(); r != nullptr) {
            c->forget_reply();
            r->respond(503, "text/plain", "shutting down\n");
        }
        calls_.destroy(c);
    }
}

void Triggers::on_tunnel_usable() noexcept {
    if (auto_started_ || options_.auto_count == 0) {
        auto_started_ = true;
        return;
    }
    auto_started_ = true;
    FERRY_LOG(Info, "Auto-trigger starting — sending %u messages", options_.auto_count);
    for (uint32_t i = 1; i <= options_.auto_count; ++i) {
        json message;
        message["message"] =
            absl::StrFormat("auto-trigger message %u of %u", i, options_.auto_count);
        message["from"] = options_.node_name;
        message["seq"] = i;
        TriggerCall* call = calls_.create(*this, next_seq_++, nullptr, true);
        live_.push_back(call);
        (void)call->start(dump(message));
    }
}

void Triggers::on_call_ended(const TriggerCall& call, bool ok, std::string_view error) noexcept {
    if (!ok) {
        FERRY_LOG(Warn, "%s message %u failed: %.*s",
                  call.auto_trigger() ? "Auto-trigger" : "Trigger", call.seq(),
                  static_cast<int>(error.size()), error.data());
    }
    if (!call.auto_trigger()) {
        return;
    }
    ++auto_ended_;
    auto_sent_ += ok ? 1U : 0U;
    if (auto_ended_ == options_.auto_count) {
        FERRY_LOG(Info, "Auto-trigger complete — %u/%u messages sent.", auto_sent_,
                  options_.auto_count);
    }
}

void Triggers::on_call_released(TriggerCall* call) noexcept {
    live_.erase(std::remove(live_.begin(), live_.end(), call), live_.end());
    ctx_.defer_retire(call);
}

void Triggers::tick(uint64_t now_ns) noexcept {
    // expire() releases the call (it leaves live_): walk a copy.
    std::vector<TriggerCall*> due;
    for (TriggerCall* c : live_) {
        if (!c->ended() && now_ns > c->deadline_ns()) {
            due.push_back(c);
        }
    }
    for (TriggerCall* c : due) {
        c->expire();
    }
}

void Triggers::serve(std::string_view method, std::string_view /*query*/, std::string_view body,
                     AdminReply& reply) noexcept {
    if (method != "POST") {
        reply.respond(405, "text/plain", "use POST with a JSON body\n");
        return;
    }
    json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
        reply.respond(400, "text/plain", "the body is not valid JSON\n");
        return;
    }
    TriggerCall* call = calls_.create(*this, next_seq_++, &reply, false);
    live_.push_back(call);
    (void)call->start(std::string(body));
}

void Triggers::cancel(AdminReply& reply) noexcept {
    for (TriggerCall* c : live_) {
        if (c->reply() == &reply) {
            c->forget_reply();
        }
    }
}

}  // namespace ferry::role
