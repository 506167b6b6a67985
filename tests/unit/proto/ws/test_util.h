// Test helpers for the WebSocket codec: a frame builder independent of frame_writer, a recording
// sink, and feeding helpers that run an input through every split.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/proto/ws/frame.h"
#include "ferry/proto/ws/frame_parser.h"

namespace ferry::proto::ws::testing {

inline constexpr uint8_t kFin = 0x80;
// The key of the RFC 6455 §5.7 examples.
inline constexpr MaskKey kRfcKey = {std::byte{0x37}, std::byte{0xfa}, std::byte{0x21},
                                    std::byte{0x3d}};

inline std::span<const std::byte> as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline std::string as_string(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Printable ASCII as is (backslash doubled), every other byte as \xNN.
inline std::string escaped(std::string_view s) {
    constexpr char kHex[] = "0123456789abcdef";
    if (std::all_of(s.begin(), s.end(),
                    [](char c) { return c >= 0x20 && c < 0x7f && c != '\\'; })) {
        return std::string(s);
    }
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

// Encodes a frame by hand (not with frame_writer, which is under test too). `b0` is the first
// byte (FIN, RSV, opcode); `length_form` forces a 16-bit (16) or 64-bit (64) length field, 0
// picks the shortest; with `key` the frame is masked with a plain per-byte XOR.
inline std::string raw_frame(int b0, std::string_view payload, std::optional<MaskKey> key,
                             int length_form = 0) {
    std::string f(1, static_cast<char>(b0));
    const char mask_bit = key.has_value() ? '\x80' : '\0';
    const uint64_t n = payload.size();
    if (length_form == 0 && n < 126) {
        f += static_cast<char>(mask_bit | static_cast<char>(n));
    } else if (length_form != 64 && n <= 0xffff) {
        f += static_cast<char>(mask_bit | 126);
        f += static_cast<char>(n >> 8);
        f += static_cast<char>(n & 0xff);
    } else {
        f += static_cast<char>(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8) {
            f += static_cast<char>((n >> shift) & 0xff);
        }
    }
    if (key.has_value()) {
        for (std::byte b : *key) {
            f += static_cast<char>(b);
        }
    }
    for (size_t i = 0; i < payload.size(); ++i) {
        const auto k = key.has_value() ? std::to_integer<char>((*key)[i % 4]) : '\0';
        f += static_cast<char>(payload[i] ^ k);
    }
    return f;
}

// A frame as a client sends it (masked with the RFC key) and as a server sends it.
inline std::string masked(int b0, std::string_view payload, int length_form = 0) {
    return raw_frame(b0, payload, kRfcKey, length_form);
}
inline std::string unmasked(int b0, std::string_view payload, int length_form = 0) {
    return raw_frame(b0, payload, std::nullopt, length_form);
}

inline std::string close_body(uint16_t code, std::string_view reason = {}) {
    std::string body;
    body += static_cast<char>(code >> 8);
    body += static_cast<char>(code & 0xff);
    return body + std::string(reason);
}

inline std::string opcode_name(Opcode op) {
    switch (op) {
        case Opcode::Continuation:
            return "Continuation";
        case Opcode::Text:
            return "Text";
        case Opcode::Binary:
            return "Binary";
        case Opcode::Close:
            return "Close";
        case Opcode::Ping:
            return "Ping";
        case Opcode::Pong:
            return "Pong";
    }
    return "op" + std::to_string(static_cast<int>(op));
}

// Records events as lines that do not depend on how the input was split: a message is
// "Text:<bytes>" with all its pieces appended, " FIN" at its end; a control frame between its
// fragments ends the line and the message goes on in a "...:" line. A control frame is
// "Ping:<payload>". Protocol slips of the parser (data outside a message, a piece outside the
// span being fed, an empty piece without fin) are recorded as "BUG ..." lines.
class RecordingSink {
  public:
    std::vector<std::string> events;
    std::span<const std::byte> chunk;  // the span passed to the current feed()
    const void* parser = nullptr;      // control payloads may also point into it
    size_t parser_size = 0;
    // When non-zero, every stop_every-th on_data/on_control call returns false.
    unsigned stop_every = 0;
    unsigned calls = 0;

    void on_message_start(Opcode op) noexcept {
        if (in_message_) {
            events.push_back("BUG message start inside a message");
        }
        in_message_ = true;
        events.push_back(opcode_name(op) + ":");
        data_line_ = true;
    }
    bool on_data(std::span<const std::byte> piece, bool fin) noexcept {
        check_inside_chunk(piece, false);
        if (!in_message_) {
            events.push_back("BUG data outside a message");
        }
        if (piece.empty() && !fin) {
            events.push_back("BUG empty piece without fin");
        }
        if (!data_line_) {
            events.push_back("...:");
            data_line_ = true;
        }
        events.back() += escaped(as_string(piece));
        if (fin) {
            events.back() += " FIN";
            data_line_ = false;
            in_message_ = false;
        }
        return proceed();
    }
    bool on_control(Opcode op, std::span<const std::byte> payload) noexcept {
        check_inside_chunk(payload, true);
        if (payload.size() > kMaxControlPayload) {
            events.push_back("BUG control payload over 125 bytes");
        }
        events.push_back(opcode_name(op) + ":" + escaped(as_string(payload)));
        data_line_ = false;
        return proceed();
    }

  private:
    bool proceed() noexcept { return stop_every == 0 || ++calls % stop_every != 0; }
    void check_inside_chunk(std::span<const std::byte> piece, bool may_be_in_parser) {
        if (piece.empty()) {
            return;
        }
        const auto* b = piece.data();
        const bool in_chunk = b >= chunk.data() && b + piece.size() <= chunk.data() + chunk.size();
        const auto* pb = static_cast<const std::byte*>(parser);
        const bool in_parser = may_be_in_parser && b >= pb && b + piece.size() <= pb + parser_size;
        if (!in_chunk && !in_parser) {
            events.push_back("BUG piece outside the fed span");
        }
    }

    bool in_message_ = false;
    bool data_line_ = false;
};

struct FeedOutcome {
    std::vector<std::string> events;
    ParseStatus status = ParseStatus::NeedMore;
    CloseCode code = CloseCode::NormalClosure;
    std::string detail;
    size_t consumed = 0;  // over all feeds
    std::string buffer;   // the input after the run (unmasked in place where consumed)
};

// Feeds a copy of `input` in chunks of `sizes` (remainder last), re-feeding after every Stopped,
// until the input ends, the parser closes or fails.
inline FeedOutcome feed_chunks(std::string_view input, const std::vector<size_t>& sizes,
                               const ParserOptions& options, unsigned stop_every = 0) {
    std::vector<std::byte> buffer(input.size());
    if (!input.empty()) {
        std::memcpy(buffer.data(), input.data(), input.size());
    }
    FrameParser parser(options);
    RecordingSink sink;
    sink.parser = &parser;
    sink.parser_size = sizeof(parser);
    sink.stop_every = stop_every;
    FeedOutcome out;
    size_t pos = 0;
    size_t next = 0;
    bool done = false;
    while (pos < buffer.size() && !done) {
        size_t n = next < sizes.size() ? sizes[next++] : buffer.size() - pos;
        n = std::min(n, buffer.size() - pos);
        std::span<std::byte> chunk(buffer.data() + pos, n);
        while (true) {
            sink.chunk = chunk;
            const ParseResult r = parser.feed(chunk, sink);
            EXPECT_LE(r.consumed, chunk.size());
            out.consumed += r.consumed;
            out.status = r.status;
            if (r.status == ParseStatus::Stopped) {
                chunk = chunk.subspan(r.consumed);
                if (chunk.empty()) {
                    break;
                }
                continue;
            }
            if (r.status == ParseStatus::NeedMore) {
                EXPECT_EQ(r.consumed, chunk.size());
                EXPECT_EQ(r.detail, nullptr);
            } else {
                done = true;
                if (r.status == ParseStatus::Error) {
                    out.code = r.code;
                    EXPECT_NE(r.detail, nullptr);
                    out.detail = r.detail != nullptr ? r.detail : "";
                    // A failed parser repeats its error and takes nothing more.
                    const ParseResult again = parser.feed(chunk.subspan(r.consumed), sink);
                    EXPECT_EQ(again.status, ParseStatus::Error);
                    EXPECT_EQ(again.consumed, 0U);
                    EXPECT_EQ(again.code, r.code);
                } else {
                    const ParseResult again = parser.feed(chunk.subspan(r.consumed), sink);
                    EXPECT_EQ(again.status, ParseStatus::Closed);
                    EXPECT_EQ(again.consumed, 0U);
                    EXPECT_TRUE(parser.closed());
                }
            }
            break;
        }
        pos += n;
    }
    if (out.status == ParseStatus::Stopped) {
        out.status = ParseStatus::NeedMore;  // the last stop fell on the end of the input
    }
    out.events = std::move(sink.events);
    out.buffer = as_string(buffer);
    if (out.status != ParseStatus::Error) {
        // Only what was consumed may have been unmasked in place.
        EXPECT_EQ(escaped(out.buffer.substr(out.consumed)), escaped(input.substr(out.consumed)));
    }
    return out;
}

inline FeedOutcome feed_whole(std::string_view input, const ParserOptions& options) {
    return feed_chunks(input, {input.size()}, options);
}

// The whole input, each split point in two, byte by byte, and a few random chunkings with a
// fixed seed. Above 2 KiB, where headers are a small part of the input, the two-piece splits are
// the first and last 40 points and 40 more spread between them (sanitized runs stay short).
inline std::vector<std::vector<size_t>> every_split(size_t n) {
    std::vector<std::vector<size_t>> splits{{n}};
    const size_t stride = std::max<size_t>(n / 40, 1);
    for (size_t k = 1; k < n; ++k) {
        if (n <= 2048 || k <= 40 || n - k <= 40 || k % stride == 0) {
            splits.push_back({k, n - k});
        }
    }
    if (n > 1) {
        splits.emplace_back(n, 1);
    }
    std::mt19937 rng(static_cast<uint32_t>(n));
    for (int round = 0; round < 4; ++round) {
        std::vector<size_t> sizes;
        for (size_t left = n; left > 0;) {
            const size_t take = std::min<size_t>(left, 1 + rng() % 23);
            sizes.push_back(take);
            left -= take;
        }
        splits.push_back(sizes);
    }
    return splits;
}

inline std::string describe_split(const std::vector<size_t>& sizes) {
    // Appends only: GCC 12 at -O3 warns (-Wrestrict, PR 105329) on `"literal" + std::string`.
    std::string s;
    for (size_t i = 0; i < sizes.size() && i < 8; ++i) {
        if (i != 0) {
            s += ',';
        }
        s += std::to_string(sizes[i]);
    }
    if (sizes.size() > 8) {
        s.append(",... (").append(std::to_string(sizes.size())).append(" chunks)");
    }
    return s;
}

// Runs `input` through every split, with and without the sink stopping the parser, and expects
// the same outcome as the whole-input run: events, status, code, detail and bytes consumed.
// With `partial_data`, the last event line may be longer in a split run: an error found inside a
// data chunk discards that chunk, so a finer split delivers more of the message before it.
inline FeedOutcome expect_split_invariant(std::string_view input, const ParserOptions& options,
                                          bool partial_data = false) {
    FeedOutcome whole = feed_whole(input, options);
    for (const auto& sizes : every_split(input.size())) {
        for (unsigned stop_every : {0U, 1U, 3U}) {
            const FeedOutcome out = feed_chunks(input, sizes, options, stop_every);
            std::string where = "chunks ";
            where.append(describe_split(sizes)).append(" stop_every ");
            where.append(std::to_string(stop_every));
            EXPECT_EQ(out.status, whole.status) << where;
            EXPECT_EQ(out.code, whole.code) << where;
            EXPECT_EQ(out.detail, whole.detail) << where;
            EXPECT_EQ(out.consumed, whole.consumed) << where;
            if (!partial_data) {
                EXPECT_EQ(out.events, whole.events) << where;
            } else {
                EXPECT_EQ(out.events.size(), whole.events.size()) << where;
                for (size_t i = 0; i + 1 < std::min(out.events.size(), whole.events.size()); ++i) {
                    EXPECT_EQ(out.events[i], whole.events[i]) << where;
                }
                if (!out.events.empty() && out.events.size() == whole.events.size()) {
                    EXPECT_TRUE(out.events.back().starts_with(whole.events.back()))
                        << where << ": " << out.events.back();
                }
            }
            if (::testing::Test::HasFailure()) {
                return whole;  // one failing split says enough
            }
        }
    }
    return whole;
}

// The events of every split, which must all be `events`, with the run ending in `status`.
inline void expect_events(std::string_view input, const ParserOptions& options,
                          const std::vector<std::string>& events,
                          ParseStatus status = ParseStatus::NeedMore) {
    const FeedOutcome whole = expect_split_invariant(input, options);
    EXPECT_EQ(whole.events, events);
    EXPECT_EQ(whole.status, status) << whole.detail;
    if (status != ParseStatus::Error) {
        EXPECT_EQ(whole.detail, "");
    }
}

// Every split ends in Error with `code` after `consumed` bytes and the events `events` (whole
// run). Returns the detail.
inline std::string expect_error(std::string_view input, const ParserOptions& options,
                                CloseCode code, size_t consumed,
                                const std::vector<std::string>& events = {},
                                bool partial_data = false) {
    const FeedOutcome whole = expect_split_invariant(input, options, partial_data);
    EXPECT_EQ(whole.status, ParseStatus::Error) << escaped(input);
    EXPECT_EQ(static_cast<int>(whole.code), static_cast<int>(code))
        << escaped(input) << " -> " << whole.detail;
    EXPECT_EQ(whole.consumed, consumed) << escaped(input) << " -> " << whole.detail;
    EXPECT_EQ(whole.events, events) << escaped(input);
    return whole.detail;
}

inline ParserOptions server_options() { return {}; }
inline ParserOptions client_options() {
    ParserOptions o;
    o.role = Role::Client;
    return o;
}

}  // namespace ferry::proto::ws::testing
