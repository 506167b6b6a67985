#include "ws_client.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string_view>

#include "absl/strings/str_format.h"
#include "ferry/proto/ws/frame_writer.h"
#include "ferry/proto/ws/handshake.h"

namespace ferry::bench {

namespace ws = proto::ws;

namespace {

constexpr size_t kMinFrameBuffer = 4096;  // also holds the Upgrade request
constexpr std::string_view kPing = "ping";

size_t frame_buffer_size(size_t max_payload) {
    return std::max(
        max_payload + kMaxFrameKeys * ws::kMaxFrameHeaderSize + ws::kMaxControlFrameSize,
        kMinFrameBuffer);
}

}  // namespace

WsClient::WsClient(const WsClientOptions& options, size_t max_payload)
    : options_(options),
      max_payload_(max_payload),
      frame_(std::make_unique_for_overwrite<std::byte[]>(frame_buffer_size(max_payload))),
      parser_(ws::ParserOptions{.role = ws::Role::Client,
                                // An answer that is not an echo may be longer (JSON).
                                .max_message_size = std::max<uint64_t>(
                                    options.any_reply ? max_payload + 65536 : max_payload, 1),
                                .allow_rsv = false}) {}

std::span<const std::byte> WsClient::handshake_request(
    std::span<const std::byte, 16> nonce) noexcept {
    const std::array<char, ws::kClientKeySize> key = ws::encode_client_key(nonce);
    key_.assign(key.data(), key.size());
    const std::string_view offered[1] = {options_.subprotocol};
    const size_t size = frame_buffer_size(max_payload_);
    const size_t n = ws::write_upgrade_request(
        std::span<char>(reinterpret_cast<char*>(frame_.get()), size), options_.host, options_.path,
        key_,
        options_.subprotocol.empty() ? std::span<const std::string_view>{}
                                     : std::span<const std::string_view>(offered));
    return {frame_.get(), n};  // empty: an invalid --path or --subprotocol
}

WsClient::Result WsClient::feed_handshake(std::span<const std::byte> input) noexcept {
    const ws::HeadResult head = response_.feed(input);
    switch (head.status) {
        case ws::HeadStatus::NeedMore:
            return {head.consumed, Status::NeedMore};
        case ws::HeadStatus::Error:
            return fail(head.consumed, absl::StrFormat("bad handshake response: %s", head.detail));
        case ws::HeadStatus::Complete:
            break;
    }
    const std::string_view offered[1] = {options_.subprotocol};
    const ws::UpgradeResponse upgrade = ws::validate_upgrade_response(
        response_, key_,
        options_.subprotocol.empty() ? std::span<const std::string_view>{}
                                     : std::span<const std::string_view>(offered));
    if (!upgrade.ok()) {
        return fail(head.consumed, absl::StrFormat("bad handshake (status %d): %s",
                                                   upgrade.status_code, upgrade.error));
    }
    if (!options_.subprotocol.empty() && upgrade.subprotocol != options_.subprotocol) {
        return fail(head.consumed, "bad handshake: the server chose no subprotocol");
    }
    return {head.consumed, Status::Open};
}

std::span<const std::byte> WsClient::frame_message(std::span<const std::byte> payload,
                                                   std::span<const ws::MaskKey> keys) noexcept {
    const size_t fragments = keys.size() <= 1 ? 1 : std::min(keys.size(), kMaxFrameKeys) - 1;
    std::byte* const begin = frame_.get();
    std::byte* p = begin;
    size_t offset = 0;
    for (size_t i = 0; i < fragments; ++i) {
        if (i + 1 == fragments && fragments > 1) {
            std::array<std::byte, ws::kMaxControlFrameSize> ping{};
            const size_t n = ws::write_control_frame(
                ping, ws::Opcode::Ping,
                std::as_bytes(std::span<const char>(kPing.data(), kPing.size())), keys.back());
            if (n > 0) {  // a zero-length span may carry a null pointer
                std::memcpy(p, ping.data(), n);
            }
            p += n;
        }
        const bool last = i + 1 == fragments;
        const size_t size = last ? payload.size() - offset : payload.size() / fragments;
        const ws::Opcode op = i > 0           ? ws::Opcode::Continuation
                              : options_.text ? ws::Opcode::Text
                                              : ws::Opcode::Binary;
        p += ws::write_frame_header(
            std::span<std::byte, ws::kMaxFrameHeaderSize>(p, ws::kMaxFrameHeaderSize), op, last,
            size, keys[i]);
        if (size > 0) {  // an empty message may come with a null payload pointer
            std::memcpy(p, payload.data() + offset, size);
        }
        ws::apply_mask({p, size}, keys[i], 0);
        p += size;
        offset += size;
    }
    expected_ = payload;
    outstanding_ = true;
    received_ = 0;
    return {begin, static_cast<size_t>(p - begin)};
}

WsClient::Result WsClient::feed_echo(std::span<std::byte> input) noexcept {
    Sink sink{*this};
    done_ = false;
    size_t consumed = 0;
    while (true) {
        const ws::ParseResult r = parser_.feed(input.subspan(consumed), sink);
        consumed += r.consumed;
        if (bad_ != nullptr) {
            return fail(consumed, bad_);
        }
        switch (r.status) {
            case ws::ParseStatus::NeedMore:
                return {consumed, done_ ? Status::MessageDone : Status::NeedMore};
            case ws::ParseStatus::Stopped:
                continue;  // the sink never stops the parser
            case ws::ParseStatus::Closed:
                return fail(consumed, "unexpected close from the server");
            case ws::ParseStatus::Error:
                return fail(consumed, absl::StrFormat("bad frame from the server: %s", r.detail));
        }
    }
}

WsClient::Result WsClient::fail(size_t consumed, std::string_view why) noexcept {
    error_.assign(why);
    return {consumed, Status::Error};
}

void WsClient::Sink::on_message_start(ws::Opcode op) noexcept {
    if (!client.outstanding_) {
        client.bad_ = "a message arrived with no request outstanding";
        return;
    }
    if (!client.options_.any_reply &&
        op != (client.options_.text ? ws::Opcode::Text : ws::Opcode::Binary)) {
        client.bad_ = "echoed message has another type (text/binary)";
    }
}

bool WsClient::Sink::on_data(std::span<const std::byte> bytes, bool fin) noexcept {
    if (client.bad_ != nullptr) {
        return false;
    }
    if (client.options_.any_reply) {
        client.received_ += bytes.size();
        if (fin) {
            client.outstanding_ = false;
            client.done_ = true;
        }
        return true;
    }
    const std::span<const std::byte> expected = client.expected_;
    if (client.received_ + bytes.size() > expected.size()) {
        client.bad_ = "echoed message longer than the request";
        return false;
    }
    if (client.options_.verify && !bytes.empty() &&
        std::memcmp(bytes.data(), expected.data() + client.received_, bytes.size()) != 0) {
        client.bad_ = "echoed payload differs from the request";
        return false;
    }
    client.received_ += bytes.size();
    if (fin) {
        if (client.received_ != expected.size()) {
            client.bad_ = "echoed message shorter than the request";
            return false;
        }
        client.outstanding_ = false;
        client.done_ = true;
    }
    return true;
}

bool WsClient::Sink::on_control(ws::Opcode op, std::span<const std::byte> /*payload*/) noexcept {
    return op != ws::Opcode::Close;  // Ping/Pong: ignored; Close: reported by feed_echo
}

}  // namespace ferry::bench
