#include "ferry/proto/tunnel/frame_decoder.h"

namespace ferry::proto::tunnel {

FrameError check_frame_header(const std::byte* header, bool hello_seen) noexcept {
    const uint32_t length = wire::load_u32(header);
    const auto type = static_cast<FrameType>(header[4]);
    const uint32_t stream_id = wire::load_u32(header + 8);
    if (wire::load_u16(header + 6) != 0) {
        return {ErrorCode::ProtocolError, "reserved frame header bytes are not zero"};
    }
    if (stream_id > kMaxStreamId) {
        return {ErrorCode::ProtocolError, "reserved stream id bit is set"};
    }
    if (!hello_seen && type != FrameType::Hello) {
        return {ErrorCode::ProtocolError, "first frame after the preface is not HELLO"};
    }
    const bool on_stream = stream_id != 0;
    switch (type) {
        case FrameType::Hello:
            if (hello_seen) {
                return {ErrorCode::ProtocolError, "second HELLO"};
            }
            if (on_stream) {
                return {ErrorCode::ProtocolError, "HELLO on a stream (stream id must be 0)"};
            }
            break;
        case FrameType::Open:
            if (!on_stream) {
                return {ErrorCode::ProtocolError, "OPEN on stream 0"};
            }
            break;
        case FrameType::Data:
            if (!on_stream) {
                return {ErrorCode::ProtocolError, "DATA on stream 0"};
            }
            break;
        case FrameType::Window:
            if (length != 4) {
                return {ErrorCode::FrameSizeError, "WINDOW payload is not 4 bytes"};
            }
            break;
        case FrameType::Reset:
            if (!on_stream) {
                return {ErrorCode::ProtocolError, "RESET on stream 0"};
            }
            // v1.1: an optional reason follows the code, bounded only by MaxFrameSize.
            if (length < 4) {
                return {ErrorCode::FrameSizeError, "RESET payload shorter than 4 bytes"};
            }
            break;
        case FrameType::Ping:
            if (on_stream) {
                return {ErrorCode::ProtocolError, "PING on a stream (stream id must be 0)"};
            }
            if (length != 8) {
                return {ErrorCode::FrameSizeError, "PING payload is not 8 bytes"};
            }
            break;
        case FrameType::GoAway:
            if (on_stream) {
                return {ErrorCode::ProtocolError, "GOAWAY on a stream (stream id must be 0)"};
            }
            if (length < 8) {
                return {ErrorCode::FrameSizeError, "GOAWAY payload shorter than 8 bytes"};
            }
            break;
        case FrameType::OpenAck:
            if (!on_stream) {
                return {ErrorCode::ProtocolError, "OPEN_ACK on stream 0"};
            }
            // Too short for the count is a size error; a bad list is malformed (ProtocolError).
            if (length < 2) {
                return {ErrorCode::FrameSizeError, "OPEN_ACK payload shorter than 2 bytes"};
            }
            break;
        case FrameType::Trailers:
            if (!on_stream) {
                return {ErrorCode::ProtocolError, "TRAILERS on stream 0"};
            }
            if (length < 2) {
                return {ErrorCode::FrameSizeError, "TRAILERS payload shorter than 2 bytes"};
            }
            break;
        default:
            break;  // unknown types carry no rules beyond the size limit
    }
    return {ErrorCode::NoError, nullptr};
}

FrameError decode_hello_payload(std::span<const std::byte> payload, Hello* out) noexcept {
    if (payload.size() < 4) {
        return {ErrorCode::FrameSizeError, "HELLO payload shorter than 4 bytes"};
    }
    const std::byte* b = payload.data();
    Hello hello{};
    hello.peer_version_min = wire::load_u16(b);
    hello.peer_version_max = wire::load_u16(b + 2);
    if (hello.peer_version_min > kProtocolVersion || hello.peer_version_max < kProtocolVersion) {
        return {ErrorCode::VersionMismatch, "peer's version range does not include v1"};
    }
    hello.version = kProtocolVersion;
    HelloSettings& s = hello.settings;
    size_t off = 4;
    while (off < payload.size()) {
        if (payload.size() - off < 4) {
            return {ErrorCode::ProtocolError, "malformed HELLO (truncated setting)"};
        }
        const uint16_t id = wire::load_u16(b + off);
        const uint16_t len = wire::load_u16(b + off + 2);
        off += 4;
        if (len > payload.size() - off) {
            return {ErrorCode::ProtocolError, "malformed HELLO (setting overruns payload)"};
        }
        const std::byte* value = b + off;
        off += len;
        const auto setting = static_cast<SettingId>(id);
        if (setting == SettingId::NodeName) {
            if (len > kMaxNodeNameSize) {
                return {ErrorCode::ProtocolError, "HELLO NodeName longer than 255 bytes"};
            }
            s.node_name = wire::as_text(value, len);
            continue;
        }
        if (id < static_cast<uint16_t>(SettingId::MaxFrameSize) ||
            id > static_cast<uint16_t>(SettingId::Shards)) {
            continue;  // unknown settings are ignored so later versions can add them
        }
        if (len != 4) {
            return {ErrorCode::ProtocolError, "malformed HELLO (numeric setting not 4 bytes)"};
        }
        const uint32_t v = wire::load_u32(value);
        switch (setting) {
            case SettingId::MaxFrameSize:
                if (v < kDefaultMaxFrameSize || v > kMaxFrameSizeLimit) {
                    return {ErrorCode::ProtocolError, "HELLO MaxFrameSize outside 16 KiB..16 MiB"};
                }
                s.max_frame_size = v;
                break;
            case SettingId::InitialStreamWindow:
            case SettingId::ConnectionWindow:
                // RFC 9113 §6.5.2: a window above 2^31-1 is a flow-control error.
                if (v > kMaxWindowSize) {
                    return {ErrorCode::FlowControlError, "HELLO window above 2^31-1"};
                }
                (setting == SettingId::InitialStreamWindow ? s.initial_stream_window
                                                           : s.connection_window) = v;
                break;
            case SettingId::MaxStreams:
                s.max_streams = v;
                break;
            case SettingId::Shards:
                s.shards = v;
                break;
            case SettingId::Capabilities:
            case SettingId::NodeName:
                s.capabilities = v;
                break;
        }
    }
    *out = hello;
    return {ErrorCode::NoError, nullptr};
}

FrameError decode_open_payload(std::span<const std::byte> payload, Open* out) noexcept {
    constexpr FrameError kMalformed{ErrorCode::ProtocolError, "malformed OPEN"};
    const std::byte* b = payload.data();
    const size_t size = payload.size();
    if (size < 5) {
        return kMalformed;
    }
    // v1.1: every protocol value is well-formed; the session refuses the ones it does not serve
    // with RESET UnsupportedProtocol.
    const auto protocol = static_cast<StreamProtocol>(std::to_integer<uint8_t>(b[0]));
    const size_t key_len = wire::load_u16(b + 1);
    if (3 + key_len + 2 > size) {
        return kMalformed;
    }
    MetadataView metadata;
    if (const FrameError e =
            decode_metadata_list(payload.subspan(3 + key_len), FrameType::Open, &metadata);
        e.detail != nullptr) {
        return e;
    }
    *out = Open{protocol, wire::as_text(b + 3, key_len), metadata};
    return {ErrorCode::NoError, nullptr};
}

FrameError decode_metadata_list(std::span<const std::byte> list, FrameType frame,
                                MetadataView* out) noexcept {
    const char* overrun = "malformed metadata list";
    const char* trailing = "malformed metadata list (trailing bytes)";
    switch (frame) {
        case FrameType::Open:
            overrun = "malformed OPEN (metadata overruns the payload)";
            trailing = "malformed OPEN (trailing bytes)";
            break;
        case FrameType::OpenAck:
            overrun = "malformed OPEN_ACK (metadata overruns the payload)";
            trailing = "malformed OPEN_ACK (trailing bytes)";
            break;
        case FrameType::Trailers:
            overrun = "malformed TRAILERS (metadata overruns the payload)";
            trailing = "malformed TRAILERS (trailing bytes)";
            break;
        default:
            break;
    }
    const std::byte* b = list.data();
    const size_t size = list.size();
    if (size < 2) {
        return {ErrorCode::ProtocolError, overrun};
    }
    const uint16_t count = wire::load_u16(b);
    // Validate every entry now so MetadataView can iterate without checks. Offsets stay below
    // size + 2^17, so no check below can wrap.
    size_t off = 2;
    for (uint32_t field = 0; field < 2U * count; ++field) {
        if (off + 2 > size) {
            return {ErrorCode::ProtocolError, overrun};
        }
        off += 2 + size_t{wire::load_u16(b + off)};
        if (off > size) {
            return {ErrorCode::ProtocolError, overrun};
        }
    }
    if (off != size) {
        return {ErrorCode::ProtocolError, trailing};
    }
    *out = MetadataView(b + 2, count);
    return {ErrorCode::NoError, nullptr};
}

}  // namespace ferry::proto::tunnel
