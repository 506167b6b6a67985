#include "ws_echo.h"

#include <array>
#include <optional>
#include <string_view>

#include "ferry/proto/ws/frame_writer.h"
#include "ferry/proto/ws/handshake.h"

namespace ferry::bench {

namespace ws = proto::ws;

WsEchoSession::WsEchoSession() noexcept
    : parser_(ws::ParserOptions{
          .role = ws::Role::Server, .max_message_size = kWsMaxMessageSize, .allow_rsv = false}) {}

WsEchoSession::Next WsEchoSession::feed(std::span<std::byte> input) noexcept {
    switch (state_) {
        case State::Handshake:
            return feed_handshake(input);
        case State::Open:
            return feed_frames(input);
        case State::Done:
            break;
    }
    return Next::Close;
}

void WsEchoSession::append_text(std::span<const char> text) noexcept {
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    out_.insert(out_.end(), p, p + text.size());
}

WsEchoSession::Next WsEchoSession::feed_handshake(std::span<std::byte> input) noexcept {
    const proto::http1::ParseResult head = request_.feed(input);
    if (head.status == proto::http1::ParseStatus::NeedMore) {
        return Next::Continue;
    }
    // Big enough for the 101 with a subprotocol token of up to a few hundred bytes.
    std::array<char, 2048> answer{};
    if (head.status == proto::http1::ParseStatus::Error) {
        append_text(
            {answer.data(), ws::write_error_response(answer, head.http_status, head.detail)});
        state_ = State::Done;
        return Next::Close;
    }
    const ws::UpgradeRequest upgrade = ws::validate_upgrade_request(request_);
    if (!upgrade.ok()) {
        append_text(
            {answer.data(), ws::write_error_response(answer, upgrade.http_status, upgrade.reason)});
        state_ = State::Done;
        return Next::Close;
    }
    const std::string_view subprotocol =
        upgrade.subprotocol_count > 0 ? upgrade.subprotocols[0] : std::string_view{};
    const size_t n = ws::write_101_response(answer, upgrade.key, subprotocol);
    if (n == 0) {
        append_text({answer.data(), ws::write_error_response(answer, 400, "subprotocol too long")});
        state_ = State::Done;
        return Next::Close;
    }
    append_text({answer.data(), n});
    state_ = State::Open;
    // A client may send its first frames right behind the request head.
    return feed_frames(input.subspan(head.consumed));
}

WsEchoSession::Next WsEchoSession::feed_frames(std::span<std::byte> input) noexcept {
    Sink sink{*this};
    while (true) {
        const ws::ParseResult r = parser_.feed(input, sink);
        switch (r.status) {
            case ws::ParseStatus::NeedMore:
                return Next::Continue;
            case ws::ParseStatus::Stopped:
                input = input.subspan(r.consumed);  // the sink never stops; kept for safety
                continue;
            case ws::ParseStatus::Closed:
                state_ = State::Done;  // the Close answer was appended by on_control
                return Next::Close;
            case ws::ParseStatus::Error: {
                // RFC 6455 §7.1.7: fail the connection with a Close carrying the code.
                std::array<std::byte, ws::kMaxControlFrameSize> frame{};
                const size_t n = ws::write_close_frame(frame, r.code, r.detail, std::nullopt);
                out_.insert(out_.end(), frame.begin(), frame.begin() + static_cast<ptrdiff_t>(n));
                state_ = State::Done;
                return Next::Close;
            }
        }
    }
}

void WsEchoSession::append_frame(ws::Opcode op, std::span<const std::byte> payload) noexcept {
    std::array<std::byte, ws::kMaxFrameHeaderSize> header{};
    const size_t n = ws::write_frame_header(header, op, true, payload.size(), std::nullopt);
    out_.insert(out_.end(), header.begin(), header.begin() + static_cast<ptrdiff_t>(n));
    out_.insert(out_.end(), payload.begin(), payload.end());
}

void WsEchoSession::Sink::on_message_start(ws::Opcode op) noexcept {
    session.message_op_ = op;
    session.message_.clear();
}

bool WsEchoSession::Sink::on_data(std::span<const std::byte> bytes, bool fin) noexcept {
    if (fin && session.message_.empty()) {
        session.append_frame(session.message_op_, bytes);  // one piece: no copy to message_
        return true;
    }
    session.message_.insert(session.message_.end(), bytes.begin(), bytes.end());
    if (fin) {
        session.append_frame(session.message_op_, session.message_);
        session.message_.clear();
    }
    return true;
}

bool WsEchoSession::Sink::on_control(ws::Opcode op, std::span<const std::byte> payload) noexcept {
    if (op == ws::Opcode::Ping) {
        session.append_frame(ws::Opcode::Pong, payload);
    } else if (op == ws::Opcode::Close) {
        // RFC 6455 §5.5.1: answer with a Close, echoing the status code received.
        ws::CloseInfo info{};
        (void)ws::parse_close_payload(payload, &info);  // the parser has validated it
        std::array<std::byte, ws::kMaxControlFrameSize> frame{};
        const size_t n = ws::write_close_frame(frame, info.code, {}, std::nullopt);
        session.out_.insert(session.out_.end(), frame.begin(),
                            frame.begin() + static_cast<ptrdiff_t>(n));
    }
    return true;  // an unsolicited Pong is ignored (§5.5.3)
}

}  // namespace ferry::bench
