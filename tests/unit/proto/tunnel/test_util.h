// Test helpers for the tunnel codec: a recording sink, a frame builder and feeding helpers.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/proto/tunnel/frame.h"
#include "ferry/proto/tunnel/frame_decoder.h"
#include "ferry/proto/tunnel/frame_encoder.h"

namespace ferry::proto::tunnel::testing {

inline std::span<const std::byte> as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline std::string as_string(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Printable ASCII as is (backslash doubled), every other byte as \xNN, so binary metadata values
// read well in expectations and failure messages.
inline std::string escaped(std::string_view s) {
    constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\\') {
            out += "\\\\";
        } else if (u >= 0x20 && u < 0x7f) {
            out += c;
        } else {
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 0xf];
        }
    }
    return out;
}

inline std::string kind_name(MessageKind kind) {
    switch (kind) {
        case MessageKind::Binary:
            return "Binary";
        case MessageKind::Text:
            return "Text";
        case MessageKind::Close:
            return "Close";
        case MessageKind::Compressed:
            return "Compressed";
    }
    return "kind" + std::to_string(static_cast<int>(kind));
}

inline std::string metadata_text(const MetadataView& metadata) {
    std::string text = "{";
    for (const auto& [name, value] : metadata) {
        text += escaped(name) + "=" + escaped(value) + ";";
    }
    return text + "}";
}

// Records events as readable lines so tests compare whole sequences, and keeps every DATA piece
// (with its flags) so tests can check where the pieces point and what each one carried.
class RecordingSink {
  public:
    // DATA pieces of one stream are merged into one line until a FIN or END_MESSAGE, so the line
    // sequence does not depend on how the input was split. A piece whose kind differs from the
    // one before it on the line (Binary at the start of a line) is preceded by "[Kind]", and
    // " EOM" / " FIN" close the line: a kind missing from a middle piece, or an END_MESSAGE or
    // FIN delivered early, changes the line.
    std::vector<std::string> events;
    std::vector<std::span<const std::byte>> pieces;
    std::vector<DataFlags> piece_flags;
    size_t data_calls = 0;
    // When set, the handler of event number `stop_at` (0-based, counting every call) returns false.
    long stop_at = -1;
    long calls = 0;

    bool on_hello(const Hello& h) noexcept {
        const HelloSettings& s = h.settings;
        events.push_back(
            "HELLO v" + std::to_string(h.version) + " range=" + std::to_string(h.peer_version_min) +
            "-" + std::to_string(h.peer_version_max) + " mfs=" + std::to_string(s.max_frame_size) +
            " isw=" + std::to_string(s.initial_stream_window) +
            " cw=" + std::to_string(s.connection_window) + " ms=" + std::to_string(s.max_streams) +
            " caps=" + std::to_string(s.capabilities) +
            (s.shards != 0 ? " shards=" + std::to_string(s.shards) : std::string()) +
            " node=" + std::string(s.node_name));
        return proceed();
    }
    bool on_open(uint32_t stream_id, const Open& open) noexcept {
        events.push_back("OPEN " + std::to_string(stream_id) +
                         " proto=" + std::to_string(static_cast<int>(open.protocol)) + " key=" +
                         std::string(open.routing_key) + " md=" + metadata_text(open.metadata));
        return proceed();
    }
    bool on_data(uint32_t stream_id, std::span<const std::byte> piece, DataFlags flags) noexcept {
        ++data_calls;
        pieces.push_back(piece);
        piece_flags.push_back(flags);
        if (!data_open_ || open_stream_ != stream_id || events.empty()) {
            events.push_back("DATA " + std::to_string(stream_id) + " ");
            line_kind_ = MessageKind::Binary;
        }
        if (flags.kind() != line_kind_) {
            events.back() += "[" + kind_name(flags.kind()) + "]";
            line_kind_ = flags.kind();
        }
        events.back() += as_string(piece);
        data_open_ = !flags.fin() && !flags.end_message();
        open_stream_ = stream_id;
        if (flags.end_message()) {
            events.back() += " EOM";
        }
        if (flags.fin()) {
            events.back() += " FIN";
        }
        return proceed();
    }
    bool on_window(uint32_t stream_id, uint32_t increment) noexcept {
        events.push_back("WINDOW " + std::to_string(stream_id) + " +" + std::to_string(increment));
        return proceed();
    }
    bool on_reset(uint32_t stream_id, ErrorCode code, std::string_view reason) noexcept {
        std::string line = "RESET " + std::to_string(stream_id) + " " + error_code_name(code) +
                           "(" + std::to_string(static_cast<uint32_t>(code)) + ")";
        if (!reason.empty()) {
            line += " '" + escaped(reason) + "'";
        }
        events.push_back(line);
        return proceed();
    }
    bool on_ping(bool ack, uint64_t opaque) noexcept {
        events.push_back(std::string(ack ? "PING ACK " : "PING ") + std::to_string(opaque));
        return proceed();
    }
    bool on_goaway(uint32_t last_stream_id, ErrorCode code, std::string_view debug) noexcept {
        events.push_back("GOAWAY last=" + std::to_string(last_stream_id) + " " +
                         error_code_name(code) + " '" + std::string(debug) + "'");
        return proceed();
    }
    bool on_open_ack(uint32_t stream_id, const MetadataView& metadata) noexcept {
        events.push_back("OPEN_ACK " + std::to_string(stream_id) +
                         " md=" + metadata_text(metadata));
        return proceed();
    }
    bool on_trailers(uint32_t stream_id, const MetadataView& metadata) noexcept {
        events.push_back("TRAILERS " + std::to_string(stream_id) +
                         " md=" + metadata_text(metadata));
        return proceed();
    }

  private:
    bool proceed() noexcept {
        const bool stop = calls == stop_at;
        ++calls;
        // A non-DATA event ends any DATA run, so two frames around it never merge.
        if (events.empty() || events.back().rfind("DATA ", 0) != 0) {
            data_open_ = false;
        }
        return !stop;
    }

    bool data_open_ = false;
    uint32_t open_stream_ = 0;
    MessageKind line_kind_ = MessageKind::Binary;
};

// Appends big-endian fields, for payloads the encoder would never produce.
class PayloadBuilder {
  public:
    std::vector<std::byte> bytes;

    PayloadBuilder& u8(uint8_t v) {
        bytes.push_back(std::byte{v});
        return *this;
    }
    PayloadBuilder& u16(uint16_t v) {
        return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v));
    }
    PayloadBuilder& u32(uint32_t v) {
        return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v));
    }
    PayloadBuilder& text(std::string_view s) {
        for (char c : s) {
            u8(static_cast<uint8_t>(c));
        }
        return *this;
    }
};

// Builds decoder input with the real encoder, plus raw headers for malformed frames.
class FrameBuilder {
  public:
    std::vector<std::byte> bytes;

    FrameBuilder& preface() {
        return put(kPrefaceSize, [](auto out) { return encode_preface(out); });
    }
    FrameBuilder& hello(const HelloSettings& s = {}) {
        return put(hello_frame_size(s), [&](auto out) { return encode_hello(out, s); });
    }
    FrameBuilder& open(uint32_t id, StreamProtocol protocol, std::string_view key,
                       const std::vector<MetadataEntry>& md = {}) {
        return put(open_frame_size(protocol, key, md),
                   [&](auto out) { return encode_open(out, id, protocol, key, md); });
    }
    FrameBuilder& data(uint32_t id, std::string_view payload, bool fin = false) {
        put(kFrameHeaderSize, [&](auto out) {
            return encode_data_header(out, id, static_cast<uint32_t>(payload.size()), fin);
        });
        return append(as_bytes(payload));
    }
    // One DATA frame of a message stream.
    FrameBuilder& message(uint32_t id, std::string_view payload, MessageKind kind,
                          bool end_message = true, bool fin = false) {
        put(kFrameHeaderSize, [&](auto out) {
            return encode_data_header(out, id, static_cast<uint32_t>(payload.size()),
                                      DataFlags::make(fin, end_message, kind));
        });
        return append(as_bytes(payload));
    }
    FrameBuilder& open_ack(uint32_t id, const std::vector<MetadataEntry>& md = {}) {
        return put(open_ack_frame_size(md), [&](auto out) { return encode_open_ack(out, id, md); });
    }
    FrameBuilder& trailers(uint32_t id, const std::vector<MetadataEntry>& md = {}) {
        return put(trailers_frame_size(md), [&](auto out) { return encode_trailers(out, id, md); });
    }
    FrameBuilder& window(uint32_t id, uint32_t increment) {
        return put(kWindowFrameSize, [&](auto out) { return encode_window(out, id, increment); });
    }
    FrameBuilder& reset(uint32_t id, ErrorCode code, std::string_view reason = {}) {
        return put(reset_frame_size(reason),
                   [&](auto out) { return encode_reset(out, id, code, reason); });
    }
    FrameBuilder& ping(bool ack, uint64_t opaque) {
        return put(kPingFrameSize, [&](auto out) { return encode_ping(out, ack, opaque); });
    }
    FrameBuilder& goaway(uint32_t last, ErrorCode code, std::string_view debug = {}) {
        return put(goaway_frame_size(debug),
                   [&](auto out) { return encode_goaway(out, last, code, debug); });
    }
    // Any header, valid or not, then `payload` (whose size need not match `length`).
    FrameBuilder& raw(uint32_t length, uint8_t type, uint8_t flags, uint32_t stream_id,
                      std::span<const std::byte> payload = {}, uint16_t reserved = 0) {
        PayloadBuilder h;
        h.u32(length).u8(type).u8(flags).u16(reserved).u32(stream_id);
        append(h.bytes);
        return append(payload);
    }
    // A header with the right length for `payload`.
    FrameBuilder& frame(uint8_t type, uint8_t flags, uint32_t stream_id,
                        std::span<const std::byte> payload) {
        return raw(static_cast<uint32_t>(payload.size()), type, flags, stream_id, payload);
    }
    FrameBuilder& append(std::span<const std::byte> b) {
        bytes.insert(bytes.end(), b.begin(), b.end());
        return *this;
    }

  private:
    template <typename Encode>
    FrameBuilder& put(size_t size, Encode encode) {
        const size_t at = bytes.size();
        bytes.resize(at + size);
        const size_t written = encode(std::span<std::byte>(bytes).subspan(at));
        bytes.resize(at + written);
        return *this;
    }
};

struct FeedOutcome {
    std::vector<std::string> events;
    DecodeResult last{};        // result of the last feed (the first non-Ok one, if any)
    std::string detail;         // last.detail, copied: the decoder is gone when this is returned
    bool pieces_inside = true;  // every DATA piece pointed into the chunk it came from
    size_t data_calls = 0;
    std::vector<DataFlags> piece_flags;  // the flags of every on_data call, in order
};

// Feeds `input` to a fresh decoder in chunks of `sizes` (the remainder goes in one last chunk).
// Each chunk is copied to its own allocation first, so a piece pointing anywhere but into the
// span just fed (say, into an earlier chunk or a decoder buffer) is caught.
inline FeedOutcome feed_chunks(std::span<const std::byte> input, const std::vector<size_t>& sizes,
                               uint32_t max_frame_size = kDefaultMaxFrameSize) {
    RecordingSink sink;
    FrameDecoder<RecordingSink> decoder(sink, max_frame_size);
    FeedOutcome out;
    out.last = {0, DecodeStatus::Ok, ErrorCode::NoError, nullptr};
    size_t pos = 0;
    size_t next_size = 0;
    while (pos < input.size()) {
        size_t n = next_size < sizes.size() ? sizes[next_size++] : input.size() - pos;
        n = std::min(n, input.size() - pos);
        const std::vector<std::byte> chunk(input.begin() + static_cast<std::ptrdiff_t>(pos),
                                           input.begin() + static_cast<std::ptrdiff_t>(pos + n));
        const size_t first_piece = sink.pieces.size();
        out.last = decoder.feed(chunk);
        for (size_t i = first_piece; i < sink.pieces.size(); ++i) {
            const auto& piece = sink.pieces[i];
            const bool inside = piece.empty() || (piece.data() >= chunk.data() &&
                                                  piece.data() + piece.size() <= chunk.data() + n);
            out.pieces_inside = out.pieces_inside && inside;
        }
        sink.pieces.clear();
        pos += n;
        if (out.last.status != DecodeStatus::Ok) {
            break;
        }
        if (out.last.consumed != n) {
            ADD_FAILURE() << "feed returned Ok but consumed " << out.last.consumed << " of " << n;
        }
    }
    out.detail = out.last.detail != nullptr ? out.last.detail : "";
    out.last.detail = nullptr;
    out.events = sink.events;
    out.data_calls = sink.data_calls;
    out.piece_flags = sink.piece_flags;
    return out;
}

inline FeedOutcome feed_whole(std::span<const std::byte> input,
                              uint32_t max_frame_size = kDefaultMaxFrameSize) {
    return feed_chunks(input, {input.size()}, max_frame_size);
}

// Every way to cut `input` for the split tests: byte by byte, each two-way split and `rounds`
// random chunkings (alternately small and large chunks), each as a list of chunk sizes.
inline std::vector<std::vector<size_t>> every_split(size_t input_size, int rounds = 300,
                                                    unsigned seed = 20240601) {
    std::vector<std::vector<size_t>> splits;
    splits.emplace_back(input_size, 1);
    for (size_t cut = 0; cut <= input_size; ++cut) {
        splits.push_back({cut});
    }
    std::mt19937 rng(seed);
    for (int round = 0; round < rounds; ++round) {
        std::uniform_int_distribution<size_t> size_of(1, round % 2 == 0 ? 16 : 2048);
        std::vector<size_t> sizes;
        for (size_t total = 0; total < input_size;) {
            sizes.push_back(size_of(rng));
            total += sizes.back();
        }
        splits.push_back(std::move(sizes));
    }
    return splits;
}

inline std::string describe_split(const std::vector<size_t>& sizes) {
    std::string text;
    for (size_t i = 0; i < sizes.size() && i < 12; ++i) {
        if (i > 0) {
            text += ',';
        }
        text += std::to_string(sizes[i]);
    }
    return sizes.size() > 12 ? text + ",... (" + std::to_string(sizes.size()) + " chunks)" : text;
}

}  // namespace ferry::proto::tunnel::testing
