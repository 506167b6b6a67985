#include "ferry/proto/ws/frame_writer.h"

#include <array>
#include <cstring>

#include "ferry/base/check.h"

namespace ferry::proto::ws {
namespace {

constexpr uint8_t kFin = 0x80;
constexpr uint8_t kMaskBit = 0x80;

bool is_continuation_byte(char c) noexcept {
    return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

}  // namespace

size_t write_frame_header(std::span<std::byte, kMaxFrameHeaderSize> out, Opcode op, bool fin,
                          uint64_t payload_len, std::optional<MaskKey> mask_key) noexcept {
    FERRY_DCHECK(is_known_opcode(static_cast<uint8_t>(op)));
    FERRY_DCHECK(!is_control(op) || (fin && payload_len <= kMaxControlPayload));
    // RFC 6455 §5.2: the top bit of a 64-bit length is 0; a peer would fail the connection.
    FERRY_CHECK((payload_len >> 63) == 0);
    out[0] = static_cast<std::byte>((fin ? kFin : 0) | static_cast<uint8_t>(op));
    const uint8_t mask_bit = mask_key.has_value() ? kMaskBit : 0;
    size_t size = 2;
    if (payload_len < 126) {
        out[1] = static_cast<std::byte>(mask_bit | payload_len);
    } else if (payload_len <= 0xFFFF) {
        out[1] = static_cast<std::byte>(mask_bit | 126);
        out[2] = static_cast<std::byte>(payload_len >> 8);
        out[3] = static_cast<std::byte>(payload_len);
        size = 4;
    } else {
        out[1] = static_cast<std::byte>(mask_bit | 127);
        for (size_t i = 0; i < 8; ++i) {
            out[2 + i] = static_cast<std::byte>(payload_len >> (56 - 8 * i));
        }
        size = 10;
    }
    if (mask_key.has_value()) {
        std::memcpy(out.data() + size, mask_key->data(), mask_key->size());
        size += mask_key->size();
    }
    return size;
}

std::string_view utf8_prefix(std::string_view text, size_t max_size) noexcept {
    if (text.size() <= max_size) {
        return text;
    }
    // Back off to the lead byte of the sequence the limit cuts (at most 3 bytes for UTF-8).
    size_t size = max_size;
    while (size > 0 && is_continuation_byte(text[size])) {
        --size;
    }
    return text.substr(0, size);
}

size_t write_close_payload(std::span<std::byte, kMaxControlPayload> out, CloseCode code,
                           std::string_view reason) noexcept {
    if (code == CloseCode::NoStatusReceived) {
        return 0;
    }
    const auto value = static_cast<uint16_t>(code);
    FERRY_DCHECK(is_valid_close_code_on_wire(value));
    out[0] = static_cast<std::byte>(value >> 8);
    out[1] = static_cast<std::byte>(value);
    const std::string_view kept = utf8_prefix(reason, kMaxCloseReason);
    if (!kept.empty()) {
        if (!kept.empty()) {  // a zero-length span may carry a null pointer
            std::memcpy(out.data() + 2, kept.data(), kept.size());
        }
    }
    return 2 + kept.size();
}

size_t write_control_frame(std::span<std::byte, kMaxControlFrameSize> out, Opcode op,
                           std::span<const std::byte> payload,
                           std::optional<MaskKey> mask_key) noexcept {
    FERRY_DCHECK(is_control(op));
    if (payload.size() > kMaxControlPayload) {
        return 0;
    }
    const size_t header =
        write_frame_header(out.first<kMaxFrameHeaderSize>(), op, true, payload.size(), mask_key);
    const std::span<std::byte> body = out.subspan(header, payload.size());
    if (!payload.empty()) {
        if (!payload.empty()) {  // a zero-length span may carry a null pointer
            std::memcpy(body.data(), payload.data(), payload.size());
        }
    }
    if (mask_key.has_value()) {
        apply_mask(body, *mask_key, 0);
    }
    return header + payload.size();
}

size_t write_close_frame(std::span<std::byte, kMaxControlFrameSize> out, CloseCode code,
                         std::string_view reason, std::optional<MaskKey> mask_key) noexcept {
    std::array<std::byte, kMaxControlPayload> body;
    const size_t size = write_close_payload(body, code, reason);
    return write_control_frame(out, Opcode::Close, std::span<const std::byte>(body.data(), size),
                               mask_key);
}

}  // namespace ferry::proto::ws
