// Tunnel protocol v1.1 vocabulary: wire constants, frame types, flags, settings, error codes and
// the event structs FrameDecoder hands to the session. The normative spec is
// docs/tunnel-protocol.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <utility>

namespace ferry::proto::tunnel {

inline constexpr size_t kFrameHeaderSize = 12;
inline constexpr size_t kPrefaceSize = 8;
// 0x89 is not ASCII, not a TLS record type and not a UTF-8 lead byte, so text protocols and TLS
// fail on the first byte; the trailing CRLF catches line-ending rewriting (PNG's trick).
inline constexpr std::byte kPreface[kPrefaceSize] = {
    std::byte{0x89}, std::byte{'F'}, std::byte{'E'},  std::byte{'R'},
    std::byte{'R'},  std::byte{'Y'}, std::byte{'\r'}, std::byte{'\n'},
};

// v1.1 keeps HELLO version 1; its additions are switched on by kCapabilityMessages.
inline constexpr uint16_t kProtocolVersion = 1;
// Every peer accepts frames of this size before HELLO; it is also the floor of MaxFrameSize.
inline constexpr uint32_t kDefaultMaxFrameSize = 16 * 1024;
inline constexpr uint32_t kMaxFrameSizeLimit = 16 * 1024 * 1024;
inline constexpr uint32_t kMaxWindowSize = 0x7fff'ffff;
inline constexpr uint32_t kMaxStreamId = 0x7fff'ffff;
inline constexpr uint32_t kDefaultInitialStreamWindow = 256 * 1024;
inline constexpr uint32_t kDefaultConnectionWindow = 16 * 1024 * 1024;
inline constexpr uint32_t kDefaultMaxStreams = 1024;
inline constexpr size_t kMaxNodeNameSize = 255;
// Longest RESET reason a sender may write; a receiver accepts any length within MaxFrameSize.
inline constexpr size_t kMaxResetReasonSize = 256;

enum class FrameType : uint8_t {
    Hello = 0x0,
    Open = 0x1,
    Data = 0x2,
    Window = 0x3,
    Reset = 0x4,
    Ping = 0x5,
    GoAway = 0x6,
    OpenAck = 0xa,   // v1.1, Messages only
    Trailers = 0xb,  // v1.1, Messages only
};

inline constexpr uint8_t kFlagFin = 0x1;         // DATA: the sender half-closes after this payload
inline constexpr uint8_t kFlagEndMessage = 0x2;  // DATA: this payload ends a message (Messages)
inline constexpr uint8_t kFlagAck = 0x1;         // PING: this is the reply
// DATA bits 4..7 hold the MessageKind; bits 2..3 are reserved (sent as 0, ignored).
inline constexpr uint8_t kMessageKindMask = 0xf0;
inline constexpr unsigned kMessageKindShift = 4;
inline constexpr uint8_t kDataFlagsDefined = kFlagFin | kFlagEndMessage | kMessageKindMask;

// What a message of a message stream (WebSocket, Grpc) is. Values 4..15 are reserved: they reach
// the sink as they are, and the session resets the stream with ProtocolError.
enum class MessageKind : uint8_t { Binary = 0, Text = 1, Close = 2, Compressed = 3 };

// The flags of a DATA frame as the decoder delivers them and encode_data_header writes them.
// Tcp streams use FIN only; message streams add END_MESSAGE and the kind (spec §6.3).
struct DataFlags {
    uint8_t bits = 0;

    [[nodiscard]] constexpr bool fin() const noexcept { return (bits & kFlagFin) != 0; }
    [[nodiscard]] constexpr bool end_message() const noexcept {
        return (bits & kFlagEndMessage) != 0;
    }
    // The raw 4-bit value, which may be a reserved kind.
    [[nodiscard]] constexpr MessageKind kind() const noexcept {
        return static_cast<MessageKind>(bits >> kMessageKindShift);
    }
    // `kind` must be a 4-bit value; higher bits are dropped.
    [[nodiscard]] static constexpr DataFlags make(bool fin, bool end_message = false,
                                                  MessageKind kind = MessageKind::Binary) noexcept {
        const unsigned kind_bits = (static_cast<unsigned>(kind) << kMessageKindShift) & 0xf0U;
        return DataFlags{static_cast<uint8_t>((fin ? kFlagFin : 0U) |
                                              (end_message ? kFlagEndMessage : 0U) | kind_bits)};
    }
    friend constexpr bool operator==(DataFlags, DataFlags) noexcept = default;
};

enum class SettingId : uint16_t {
    MaxFrameSize = 1,
    InitialStreamWindow = 2,
    ConnectionWindow = 3,
    MaxStreams = 4,
    Capabilities = 5,
    NodeName = 6,
    Shards = 7,  // how many shards serve this side's tunnel connections (placement hint)
};

// Bits of the Capabilities setting.
inline constexpr uint32_t kCapabilityKeyUpdate = 1U << 0;  // TLS stack can take a TLS 1.3 KeyUpdate
// Speaks v1.1: END_MESSAGE and kinds in DATA, OPEN_ACK, TRAILERS, RESET reasons. Used on a
// connection only when both HELLOs set it.
inline constexpr uint32_t kCapabilityMessages = 1U << 1;

// The protocol byte of OPEN. Tcp is a byte stream; WebSocket and Grpc are message streams.
enum class StreamProtocol : uint8_t { Tcp = 0, WebSocket = 1, Grpc = 2 };

// Carried in RESET and GOAWAY. Values outside the list are legal on the wire and must be treated
// like InternalError by policy, never rejected (RFC 9113 §7 has the same rule).
enum class ErrorCode : uint32_t {
    NoError = 0,
    ProtocolError = 1,
    InternalError = 2,
    FlowControlError = 3,
    RefusedStream = 4,
    Cancel = 5,
    ConnectRefused = 6,
    UpstreamReset = 7,
    FrameSizeError = 8,
    Timeout = 9,
    Shutdown = 10,
    BadPreface = 11,
    VersionMismatch = 12,
    UnsupportedProtocol = 13,
};

// Stable name for logs and metrics labels; "Unknown" for codes this version does not define.
[[nodiscard]] constexpr const char* error_code_name(ErrorCode code) noexcept {
    constexpr const char* kNames[] = {
        "NoError",  "ProtocolError",  "InternalError",   "FlowControlError",    "RefusedStream",
        "Cancel",   "ConnectRefused", "UpstreamReset",   "FrameSizeError",      "Timeout",
        "Shutdown", "BadPreface",     "VersionMismatch", "UnsupportedProtocol",
    };
    const auto index = static_cast<uint32_t>(code);
    return index < std::size(kNames) ? kNames[index] : "Unknown";
}

// Outcome of FrameDecoder::feed. Ok: all input consumed (a partial frame may be buffered).
// Stopped: the sink returned false; `consumed` ends right after the delivered frame or DATA
// piece, and the caller feeds the rest later. Error: the connection is dead; `code` goes into the
// GOAWAY and `detail` (static or decoder-owned, valid while the decoder lives) into the log.
enum class DecodeStatus : uint8_t { Ok, Error, Stopped };

struct DecodeResult {
    size_t consumed;
    DecodeStatus status;
    ErrorCode code;
    const char* detail;
};

// HELLO settings; the defaults are what a peer assumes for a setting that is absent.
struct HelloSettings {
    uint32_t max_frame_size = kDefaultMaxFrameSize;
    uint32_t initial_stream_window = kDefaultInitialStreamWindow;
    uint32_t connection_window = kDefaultConnectionWindow;
    uint32_t max_streams = kDefaultMaxStreams;
    uint32_t capabilities = 0;
    std::string_view node_name;  // pod name for the trail, at most kMaxNodeNameSize bytes
    uint32_t shards = 0;         // 0: not said (and not sent); see docs/shard-balance.md
};

// A decoded HELLO; string views point into decoder or input storage, valid during on_hello only.
struct Hello {
    uint16_t version;  // negotiated: always kProtocolVersion
    uint16_t peer_version_min;
    uint16_t peer_version_max;
    HelloSettings settings;
};

namespace wire {

[[nodiscard]] inline uint16_t load_u16(const std::byte* p) noexcept {
    return static_cast<uint16_t>((std::to_integer<uint32_t>(p[0]) << 8) |
                                 std::to_integer<uint32_t>(p[1]));
}
[[nodiscard]] inline uint32_t load_u32(const std::byte* p) noexcept {
    return (std::to_integer<uint32_t>(p[0]) << 24) | (std::to_integer<uint32_t>(p[1]) << 16) |
           (std::to_integer<uint32_t>(p[2]) << 8) | std::to_integer<uint32_t>(p[3]);
}
[[nodiscard]] inline uint64_t load_u64(const std::byte* p) noexcept {
    return (static_cast<uint64_t>(load_u32(p)) << 32) | load_u32(p + 4);
}
[[nodiscard]] inline std::string_view as_text(const std::byte* p, size_t n) noexcept {
    return {reinterpret_cast<const char*>(p), n};
}

}  // namespace wire

using MetadataEntry = std::pair<std::string_view, std::string_view>;

// Read-only view over the entries of an already validated metadata list (OPEN, OPEN_ACK,
// TRAILERS). Iteration yields (name, value) views into the same storage as the view itself:
// valid during the sink call that received it only. Names and values are raw bytes (`-bin`
// values included), not necessarily text.
class MetadataView final {
  public:
    class Iterator final {
      public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = MetadataEntry;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = MetadataEntry;

        Iterator() noexcept = default;
        Iterator(const std::byte* pos, uint16_t left) noexcept : pos_(pos), left_(left) {}

        [[nodiscard]] MetadataEntry operator*() const noexcept {
            const uint16_t name_len = wire::load_u16(pos_);
            const std::byte* value = pos_ + 2 + name_len;
            return {wire::as_text(pos_ + 2, name_len),
                    wire::as_text(value + 2, wire::load_u16(value))};
        }
        Iterator& operator++() noexcept {
            const std::byte* value = pos_ + 2 + wire::load_u16(pos_);
            pos_ = value + 2 + wire::load_u16(value);
            --left_;
            return *this;
        }
        Iterator operator++(int) noexcept {
            Iterator before = *this;
            ++*this;
            return before;
        }
        // Entries are visited in order, so the count left identifies the position.
        [[nodiscard]] bool operator==(const Iterator& other) const noexcept {
            return left_ == other.left_;
        }

      private:
        const std::byte* pos_ = nullptr;
        uint16_t left_ = 0;
    };

    MetadataView() noexcept = default;
    // `entries` must hold `count` well-formed entries; the decoder checks this before the call.
    MetadataView(const std::byte* entries, uint16_t count) noexcept
        : entries_(entries), count_(count) {}

    [[nodiscard]] uint16_t size() const noexcept { return count_; }
    [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
    [[nodiscard]] Iterator begin() const noexcept { return {entries_, count_}; }
    [[nodiscard]] Iterator end() const noexcept { return {nullptr, 0}; }

  private:
    const std::byte* entries_ = nullptr;
    uint16_t count_ = 0;
};

// A decoded OPEN; views are valid during on_open only (copy what the stream keeps).
struct Open {
    // Any byte value: values outside the enumerators are well-formed, and the session answers
    // them with RESET UnsupportedProtocol.
    StreamProtocol protocol;
    std::string_view routing_key;
    MetadataView metadata;
};

}  // namespace ferry::proto::tunnel
