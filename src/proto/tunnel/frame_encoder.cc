#include "ferry/proto/tunnel/frame_encoder.h"

#include <cstring>
#include <limits>

#include "ferry/base/check.h"

namespace ferry::proto::tunnel {
namespace {

// HELLO: version range, five u32 settings, then NodeName; Shards (8 more) only when set.
constexpr size_t kHelloFixedPayload = 4 + 5 * (4 + 4) + 4;
constexpr size_t kU16Max = std::numeric_limits<uint16_t>::max();

std::byte* put_u16(std::byte* p, uint16_t v) noexcept {
    p[0] = static_cast<std::byte>(v >> 8);
    p[1] = static_cast<std::byte>(v);
    return p + 2;
}

std::byte* put_u32(std::byte* p, uint32_t v) noexcept {
    p[0] = static_cast<std::byte>(v >> 24);
    p[1] = static_cast<std::byte>(v >> 16);
    p[2] = static_cast<std::byte>(v >> 8);
    p[3] = static_cast<std::byte>(v);
    return p + 4;
}

std::byte* put_bytes(std::byte* p, std::string_view bytes) noexcept {
    if (!bytes.empty()) {
        std::memcpy(p, bytes.data(), bytes.size());
    }
    return p + bytes.size();
}

std::byte* put_header(std::byte* p, size_t length, FrameType type, uint8_t flags,
                      uint32_t stream_id) noexcept {
    FERRY_DCHECK(length <= kMaxFrameSizeLimit);
    FERRY_DCHECK(stream_id <= kMaxStreamId);
    p = put_u32(p, static_cast<uint32_t>(length));
    p[0] = static_cast<std::byte>(type);
    p[1] = static_cast<std::byte>(flags);
    p = put_u16(p + 2, 0);
    return put_u32(p, stream_id);
}

std::byte* put_setting(std::byte* p, SettingId id, uint32_t value) noexcept {
    p = put_u16(p, static_cast<uint16_t>(id));
    p = put_u16(p, 4);
    return put_u32(p, value);
}

// Bytes of a metadata list (count + entries); 0 when a length does not fit its u16 field.
size_t metadata_list_size(std::span<const MetadataEntry> metadata) noexcept {
    if (metadata.size() > kU16Max) {
        return 0;
    }
    size_t size = 2;
    for (const auto& [name, value] : metadata) {
        if (name.size() > kU16Max || value.size() > kU16Max) {
            return 0;
        }
        size += 2 + name.size() + 2 + value.size();
    }
    return size;
}

std::byte* put_metadata_list(std::byte* p, std::span<const MetadataEntry> metadata) noexcept {
    p = put_u16(p, static_cast<uint16_t>(metadata.size()));
    for (const auto& [name, value] : metadata) {
        p = put_u16(p, static_cast<uint16_t>(name.size()));
        p = put_bytes(p, name);
        p = put_u16(p, static_cast<uint16_t>(value.size()));
        p = put_bytes(p, value);
    }
    return p;
}

// A frame whose payload is only a metadata list: OPEN_ACK and TRAILERS.
size_t metadata_frame_size(std::span<const MetadataEntry> metadata) noexcept {
    const size_t payload = metadata_list_size(metadata);
    return payload != 0 && payload <= kMaxFrameSizeLimit ? kFrameHeaderSize + payload : 0;
}

size_t encode_metadata_frame(std::span<std::byte> out, FrameType type, uint32_t stream_id,
                             std::span<const MetadataEntry> metadata) noexcept {
    FERRY_DCHECK(stream_id != 0);
    const size_t size = metadata_frame_size(metadata);
    if (size == 0 || out.size() < size) {
        return 0;
    }
    std::byte* p = put_header(out.data(), size - kFrameHeaderSize, type, 0, stream_id);
    p = put_metadata_list(p, metadata);
    FERRY_DCHECK(static_cast<size_t>(p - out.data()) == size);
    return size;
}

}  // namespace

size_t encode_preface(std::span<std::byte> out) noexcept {
    if (out.size() < kPrefaceSize) {
        return 0;
    }
    std::memcpy(out.data(), kPreface, kPrefaceSize);
    return kPrefaceSize;
}

size_t hello_frame_size(const HelloSettings& settings) noexcept {
    const bool encodable = settings.node_name.size() <= kMaxNodeNameSize &&
                           settings.max_frame_size >= kDefaultMaxFrameSize &&
                           settings.max_frame_size <= kMaxFrameSizeLimit &&
                           settings.initial_stream_window <= kMaxWindowSize &&
                           settings.connection_window <= kMaxWindowSize;
    const size_t shards = settings.shards != 0 ? 4 + 4 : 0;
    return encodable ? kFrameHeaderSize + kHelloFixedPayload + shards + settings.node_name.size()
                     : 0;
}

size_t encode_hello(std::span<std::byte> out, const HelloSettings& settings) noexcept {
    const size_t size = hello_frame_size(settings);
    if (size == 0 || out.size() < size) {
        return 0;
    }
    std::byte* p = put_header(out.data(), size - kFrameHeaderSize, FrameType::Hello, 0, 0);
    p = put_u16(p, kProtocolVersion);
    p = put_u16(p, kProtocolVersion);
    p = put_setting(p, SettingId::MaxFrameSize, settings.max_frame_size);
    p = put_setting(p, SettingId::InitialStreamWindow, settings.initial_stream_window);
    p = put_setting(p, SettingId::ConnectionWindow, settings.connection_window);
    p = put_setting(p, SettingId::MaxStreams, settings.max_streams);
    p = put_setting(p, SettingId::Capabilities, settings.capabilities);
    if (settings.shards != 0) {
        p = put_setting(p, SettingId::Shards, settings.shards);
    }
    p = put_u16(p, static_cast<uint16_t>(SettingId::NodeName));
    p = put_u16(p, static_cast<uint16_t>(settings.node_name.size()));
    p = put_bytes(p, settings.node_name);
    FERRY_DCHECK(static_cast<size_t>(p - out.data()) == size);
    return size;
}

size_t open_frame_size(StreamProtocol /*protocol*/, std::string_view routing_key,
                       std::span<const MetadataEntry> metadata) noexcept {
    const size_t list = metadata_list_size(metadata);
    if (routing_key.size() > kU16Max || list == 0) {
        return 0;
    }
    const size_t payload = 1 + 2 + routing_key.size() + list;
    return payload <= kMaxFrameSizeLimit ? kFrameHeaderSize + payload : 0;
}

size_t encode_open(std::span<std::byte> out, uint32_t stream_id, StreamProtocol protocol,
                   std::string_view routing_key, std::span<const MetadataEntry> metadata) noexcept {
    FERRY_DCHECK(stream_id != 0);
    const size_t size = open_frame_size(protocol, routing_key, metadata);
    if (size == 0 || out.size() < size) {
        return 0;
    }
    std::byte* p = put_header(out.data(), size - kFrameHeaderSize, FrameType::Open, 0, stream_id);
    *p++ = static_cast<std::byte>(protocol);
    p = put_u16(p, static_cast<uint16_t>(routing_key.size()));
    p = put_bytes(p, routing_key);
    p = put_metadata_list(p, metadata);
    FERRY_DCHECK(static_cast<size_t>(p - out.data()) == size);
    return size;
}

size_t open_ack_frame_size(std::span<const MetadataEntry> metadata) noexcept {
    return metadata_frame_size(metadata);
}

size_t encode_open_ack(std::span<std::byte> out, uint32_t stream_id,
                       std::span<const MetadataEntry> metadata) noexcept {
    return encode_metadata_frame(out, FrameType::OpenAck, stream_id, metadata);
}

size_t trailers_frame_size(std::span<const MetadataEntry> metadata) noexcept {
    return metadata_frame_size(metadata);
}

size_t encode_trailers(std::span<std::byte> out, uint32_t stream_id,
                       std::span<const MetadataEntry> metadata) noexcept {
    return encode_metadata_frame(out, FrameType::Trailers, stream_id, metadata);
}

size_t encode_data_header(std::span<std::byte> out, uint32_t stream_id, uint32_t payload_len,
                          DataFlags flags) noexcept {
    FERRY_DCHECK(stream_id != 0);
    FERRY_DCHECK((flags.bits & ~kDataFlagsDefined) == 0);
    if (out.size() < kFrameHeaderSize) {
        return 0;
    }
    put_header(out.data(), payload_len, FrameType::Data, flags.bits, stream_id);
    return kFrameHeaderSize;
}

size_t encode_window(std::span<std::byte> out, uint32_t stream_id, uint32_t increment) noexcept {
    FERRY_DCHECK(increment != 0 && increment <= kMaxWindowSize);
    if (out.size() < kWindowFrameSize) {
        return 0;
    }
    put_u32(put_header(out.data(), 4, FrameType::Window, 0, stream_id), increment);
    return kWindowFrameSize;
}

size_t encode_reset(std::span<std::byte> out, uint32_t stream_id, ErrorCode code,
                    std::string_view reason) noexcept {
    FERRY_DCHECK(stream_id != 0);
    const size_t size = reset_frame_size(reason);
    if (size == 0 || out.size() < size) {
        return 0;
    }
    std::byte* p = put_header(out.data(), size - kFrameHeaderSize, FrameType::Reset, 0, stream_id);
    put_bytes(put_u32(p, static_cast<uint32_t>(code)), reason);
    return size;
}

size_t encode_ping(std::span<std::byte> out, bool ack, uint64_t opaque) noexcept {
    if (out.size() < kPingFrameSize) {
        return 0;
    }
    std::byte* p = put_header(out.data(), 8, FrameType::Ping, ack ? kFlagAck : 0, 0);
    p = put_u32(p, static_cast<uint32_t>(opaque >> 32));
    put_u32(p, static_cast<uint32_t>(opaque));
    return kPingFrameSize;
}

size_t encode_goaway(std::span<std::byte> out, uint32_t last_stream_id, ErrorCode code,
                     std::string_view debug) noexcept {
    FERRY_DCHECK(last_stream_id <= kMaxStreamId);
    const size_t size = goaway_frame_size(debug);
    if (debug.size() > kMaxFrameSizeLimit - 8 || out.size() < size) {
        return 0;
    }
    std::byte* p = put_header(out.data(), size - kFrameHeaderSize, FrameType::GoAway, 0, 0);
    p = put_u32(p, last_stream_id);
    p = put_u32(p, static_cast<uint32_t>(code));
    put_bytes(p, debug);
    return size;
}

}  // namespace ferry::proto::tunnel
