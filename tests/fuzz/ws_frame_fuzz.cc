// libFuzzer target for the WebSocket FrameParser. Each input is parsed three times on copies of
// the bytes (the parser unmasks in place): whole, in chunks of one size and byte by byte, with
// the sink stopping the parser now and then. All runs must end the same way (status, close code,
// detail, bytes consumed) and see the same events, and a closed parser must leave the bytes after
// the Close frame untouched. The sink checks the event grammar (message start / data / fin,
// control frames between fragments), that views lie inside the span being fed, and re-checks
// every complete text message and Close reason with a plain reference UTF-8 decoder, so nothing
// invalid gets past the DFA and the parser's piecewise checks.
//
// Input layout: byte 0 picks the chunk size (low 6 bits + 1), the role (bit 6: client, else
// server) and the message limit (bit 7: 64 bytes, else the default); byte 1 picks how often the
// sink stops (low 2 bits: never, every 1st, 2nd or 3rd event) and whether RSV bits are allowed
// (bit 2); the rest is what the peer sends.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "ferry/base/check.h"
#include "ferry/proto/ws/frame_parser.h"

namespace {

using namespace ferry::proto::ws;

struct Digest {
    uint64_t h = 14695981039346656037ULL;
    void mix(uint64_t v) noexcept {
        h ^= v;
        h *= 1099511628211ULL;
    }
    void mix(std::span<const std::byte> bytes) noexcept {
        mix(bytes.size());
        for (std::byte b : bytes) {
            mix(std::to_integer<uint64_t>(b));  // reads every byte: ASan checks the view
        }
    }
};

// Well-formed UTF-8 decoded the obvious way, independent of Utf8Validator.
bool reference_utf8(std::span<const std::byte> s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto b0 = std::to_integer<uint32_t>(s[i]);
        size_t len = 1;
        uint32_t cp = b0;
        if (b0 >= 0xF0 && b0 <= 0xF7) {
            len = 4;
            cp = b0 & 0x07;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            len = 3;
            cp = b0 & 0x0F;
        } else if (b0 >= 0xC0 && b0 <= 0xDF) {
            len = 2;
            cp = b0 & 0x1F;
        } else if (b0 >= 0x80) {
            return false;
        }
        if (i + len > s.size()) {
            return false;
        }
        for (size_t k = 1; k < len; ++k) {
            const auto b = std::to_integer<uint32_t>(s[i + k]);
            if ((b & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (b & 0x3F);
        }
        const uint32_t min = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

class CheckingSink {
  public:
    CheckingSink(const FrameParser& parser, unsigned stop_every)
        : parser_(parser), stop_every_(stop_every) {}

    std::span<const std::byte> chunk;  // the span passed to the current feed()
    Digest digest;                     // events, with the data of finished messages
    std::vector<std::byte> message;    // data of the message in progress

    void on_message_start(Opcode op) noexcept {
        FERRY_CHECK(!in_message_);
        FERRY_CHECK(op == Opcode::Text || op == Opcode::Binary);
        FERRY_CHECK(parser_.in_message());
        in_message_ = true;
        text_ = op == Opcode::Text && parser_.message_rsv() == 0;
        FERRY_CHECK(parser_.options().allow_rsv || parser_.message_rsv() == 0);
        digest.mix(static_cast<uint64_t>(op) + 0x100);
        message.clear();
    }
    bool on_data(std::span<const std::byte> piece, bool fin) noexcept {
        FERRY_CHECK(in_message_);
        FERRY_CHECK(!piece.empty() || fin);
        check_inside(piece, false);
        message.insert(message.end(), piece.begin(), piece.end());
        FERRY_CHECK(message.size() <= parser_.options().max_message_size);
        if (fin) {
            FERRY_CHECK(!parser_.in_message());
            // The parser checked text incrementally; the reference checks the whole message.
            FERRY_CHECK(!text_ || reference_utf8(message));
            digest.mix(message);
            digest.mix(0x200);
            message.clear();
            in_message_ = false;
        }
        return proceed();
    }
    bool on_control(Opcode op, std::span<const std::byte> payload) noexcept {
        FERRY_CHECK(op == Opcode::Ping || op == Opcode::Pong || op == Opcode::Close);
        FERRY_CHECK(payload.size() <= kMaxControlPayload);
        check_inside(payload, true);
        if (op == Opcode::Close) {
            CloseInfo info{};
            FERRY_CHECK(parse_close_payload(payload, &info).detail == nullptr);
            FERRY_CHECK(payload.size() != 1);
            FERRY_CHECK(reference_utf8(payload.subspan(payload.empty() ? 0 : 2)));
            FERRY_CHECK(parser_.closed());
        }
        // Controls come between frames, so the message bytes so far do not depend on the split.
        digest.mix(static_cast<uint64_t>(op) + 0x300);
        digest.mix(message.size());
        digest.mix(payload);
        return proceed();
    }

  private:
    bool proceed() noexcept { return stop_every_ == 0 || ++calls_ % stop_every_ != 0; }
    void check_inside(std::span<const std::byte> view, bool may_be_in_parser) const noexcept {
        if (view.empty()) {
            return;
        }
        const std::byte* b = view.data();
        const bool in_chunk = b >= chunk.data() && b + view.size() <= chunk.data() + chunk.size();
        const auto* p = reinterpret_cast<const std::byte*>(&parser_);
        const bool in_parser = may_be_in_parser && b >= p && b + view.size() <= p + sizeof(parser_);
        FERRY_CHECK(in_chunk || in_parser);
    }

    const FrameParser& parser_;
    unsigned stop_every_;
    unsigned calls_ = 0;
    bool in_message_ = false;
    bool text_ = false;
};

struct Run {
    uint64_t digest;
    std::vector<std::byte> open_message;  // data of a message left unfinished
    size_t consumed;
    ParseStatus status;
    CloseCode code;
    const char* detail;
};

Run run(std::span<const std::byte> input, size_t chunk_size, const ParserOptions& options,
        unsigned stop_every) {
    std::vector<std::byte> buffer(input.begin(), input.end());
    FrameParser parser(options);
    CheckingSink sink(parser, stop_every);
    Run r{0, {}, 0, ParseStatus::NeedMore, CloseCode::NormalClosure, nullptr};
    for (size_t pos = 0; pos < buffer.size();) {
        const size_t n = std::min(chunk_size, buffer.size() - pos);
        const std::span<std::byte> chunk(buffer.data() + pos, n);
        sink.chunk = chunk;
        const ParseResult res = parser.feed(chunk, sink);
        FERRY_CHECK(res.consumed <= n);
        pos += res.consumed;
        r.consumed += res.consumed;
        r.status = res.status;
        if (res.status == ParseStatus::NeedMore) {
            FERRY_CHECK(res.consumed == n && res.detail == nullptr);
            continue;
        }
        if (res.status == ParseStatus::Stopped) {
            FERRY_CHECK(res.detail == nullptr);
            continue;  // feed the rest of the chunk again
        }
        if (res.status == ParseStatus::Error) {
            FERRY_CHECK(res.detail != nullptr && res.detail[0] != '\0');
            FERRY_CHECK(res.code == CloseCode::ProtocolError ||
                        res.code == CloseCode::InvalidPayload ||
                        res.code == CloseCode::MessageTooBig);
            FERRY_CHECK(parser.failed());
            r.code = res.code;
            r.detail = res.detail;
        } else {
            FERRY_CHECK(parser.closed());
            // Nothing after the Close was touched.
            FERRY_CHECK(std::memcmp(buffer.data() + pos, input.data() + pos, buffer.size() - pos) ==
                        0);
        }
        // Failed and closed parsers take nothing more.
        FERRY_CHECK(parser.feed(std::span<std::byte>(buffer).subspan(pos), sink).consumed == 0);
        break;
    }
    if (r.status == ParseStatus::Stopped) {
        r.status = ParseStatus::NeedMore;
    }
    r.digest = sink.digest.h;
    r.open_message = std::move(sink.message);
    return r;
}

bool is_prefix(const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

void expect_same(const Run& a, const Run& b) {
    FERRY_CHECK(a.status == b.status);
    FERRY_CHECK(a.code == b.code);
    FERRY_CHECK(a.detail == b.detail);
    FERRY_CHECK(a.consumed == b.consumed);
    FERRY_CHECK(a.digest == b.digest);
    if (a.status == ParseStatus::Error) {
        // An error inside a data piece drops that piece, so a finer split may have delivered
        // more of the failing message; one must still be a prefix of the other.
        FERRY_CHECK(is_prefix(a.open_message, b.open_message) ||
                    is_prefix(b.open_message, a.open_message));
    } else {
        FERRY_CHECK(a.open_message == b.open_message);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) {
        return 0;
    }
    ParserOptions options;
    options.role = (data[0] & 0x40U) != 0 ? Role::Client : Role::Server;
    options.max_message_size = (data[0] & 0x80U) != 0 ? 64 : kDefaultMaxMessageSize;
    options.allow_rsv = (data[1] & 0x04U) != 0;
    const size_t chunk_size = (data[0] & 0x3fU) + 1;
    const unsigned stop_every = data[1] & 0x03U;
    const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data + 2), size - 2);
    const Run whole = run(input, input.size() + 1, options, 0);
    expect_same(whole, run(input, chunk_size, options, stop_every));
    expect_same(whole, run(input, 1, options, (stop_every + 1) % 4));
    return 0;
}
