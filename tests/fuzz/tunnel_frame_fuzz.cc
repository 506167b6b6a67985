// libFuzzer target for the tunnel FrameDecoder (protocol v1.1). Each input is decoded twice:
// whole, and in chunks (with the sink stopping the decoder now and then); both runs must see the
// same events and the same final error. The sink checks that DATA pieces lie inside the span
// being fed, in order, and the digest makes the split rules differential: every piece's bytes are
// mixed with the frame's message kind and FIN / END_MESSAGE are mixed once per frame, so a kind
// missing from a middle piece or an end flag delivered early breaks the comparison.
//
// Input layout: byte 0 picks the chunk size (low 6 bits + 1) and how often the sink stops
// (high 2 bits: never, every 1st, 2nd or 3rd event); the rest is decoder input.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ferry/base/check.h"
#include "ferry/proto/tunnel/frame_decoder.h"

namespace {

using namespace ferry::proto::tunnel;

// FNV-1a; DATA bytes are mixed one by one with their stream id, so the digest does not depend on
// how a payload was cut into pieces.
struct Digest {
    uint64_t h = 14695981039346656037ULL;
    void mix(uint64_t v) noexcept {
        h ^= v;
        h *= 1099511628211ULL;
    }
    void mix(std::string_view s) noexcept {
        mix(s.size());
        for (char c : s) {
            mix(static_cast<unsigned char>(c));  // reads every byte: ASan checks the view
        }
    }
    void mix(const MetadataView& metadata) noexcept {
        size_t entries = 0;
        for (const auto& [name, value] : metadata) {
            mix(name);
            mix(value);
            ++entries;
        }
        FERRY_CHECK(entries == metadata.size());
        mix(entries);
    }
};

class CheckingSink {
  public:
    std::span<const std::byte> chunk;  // the span passed to the current feed()
    const std::byte* last_piece_end = nullptr;
    Digest digest;
    unsigned stop_every = 0;
    unsigned events = 0;

    bool on_hello(const Hello& h) noexcept {
        const HelloSettings& s = h.settings;
        FERRY_CHECK(h.version == kProtocolVersion);
        FERRY_CHECK(h.peer_version_min <= 1 && h.peer_version_max >= 1);
        FERRY_CHECK(s.max_frame_size >= kDefaultMaxFrameSize &&
                    s.max_frame_size <= kMaxFrameSizeLimit);
        FERRY_CHECK(s.initial_stream_window <= kMaxWindowSize);
        FERRY_CHECK(s.connection_window <= kMaxWindowSize);
        FERRY_CHECK(s.node_name.size() <= kMaxNodeNameSize);
        digest.mix('H');
        for (uint64_t v :
             {uint64_t{h.peer_version_min}, uint64_t{h.peer_version_max},
              uint64_t{s.max_frame_size}, uint64_t{s.initial_stream_window},
              uint64_t{s.connection_window}, uint64_t{s.max_streams}, uint64_t{s.capabilities}}) {
            digest.mix(v);
        }
        digest.mix(s.node_name);
        return proceed();
    }
    bool on_open(uint32_t stream_id, const Open& open) noexcept {
        FERRY_CHECK(stream_id != 0 && stream_id <= kMaxStreamId);
        digest.mix('O');
        digest.mix(stream_id);
        digest.mix(static_cast<uint64_t>(open.protocol));  // any byte value (v1.1)
        digest.mix(open.routing_key);
        digest.mix(open.metadata);
        return proceed();
    }
    bool on_data(uint32_t stream_id, std::span<const std::byte> piece, DataFlags flags) noexcept {
        FERRY_CHECK(stream_id != 0 && stream_id <= kMaxStreamId);
        FERRY_CHECK((flags.bits & ~kDataFlagsDefined) == 0);  // reserved bits never delivered
        const auto kind = static_cast<uint64_t>(flags.kind());
        if (!piece.empty()) {
            // Zero copy: the piece lies in the fed span, after any earlier piece of this feed.
            FERRY_CHECK(piece.data() >= chunk.data());
            FERRY_CHECK(piece.data() + piece.size() <= chunk.data() + chunk.size());
            FERRY_CHECK(last_piece_end == nullptr || piece.data() >= last_piece_end);
            last_piece_end = piece.data() + piece.size();
            for (std::byte b : piece) {
                digest.mix((uint64_t{stream_id} << 12) | (kind << 8) |
                           std::to_integer<uint64_t>(b));
            }
        } else {
            digest.mix('E');  // only a zero-length frame gives an empty piece
            digest.mix((uint64_t{stream_id} << 4) | kind);
        }
        if (flags.end_message()) {
            digest.mix('M');
            digest.mix(stream_id);
        }
        if (flags.fin()) {
            digest.mix('F');
            digest.mix(stream_id);
        }
        return proceed();
    }
    bool on_window(uint32_t stream_id, uint32_t increment) noexcept {
        FERRY_CHECK(increment >= 1 && increment <= kMaxWindowSize);
        digest.mix('W');
        digest.mix((uint64_t{stream_id} << 32) | increment);
        return proceed();
    }
    bool on_reset(uint32_t stream_id, ErrorCode code, std::string_view reason) noexcept {
        FERRY_CHECK(stream_id != 0 && stream_id <= kMaxStreamId);
        FERRY_CHECK(reason.size() <= kDefaultMaxFrameSize - 4);
        digest.mix('R');
        digest.mix((uint64_t{stream_id} << 32) | static_cast<uint32_t>(code));
        digest.mix(reason);
        (void)error_code_name(code);
        return proceed();
    }
    bool on_ping(bool ack, uint64_t opaque) noexcept {
        digest.mix(ack ? 'A' : 'P');
        digest.mix(opaque);
        return proceed();
    }
    bool on_goaway(uint32_t last_stream_id, ErrorCode code, std::string_view debug) noexcept {
        FERRY_CHECK(last_stream_id <= kMaxStreamId);
        digest.mix('G');
        digest.mix((uint64_t{last_stream_id} << 32) | static_cast<uint32_t>(code));
        digest.mix(debug);
        return proceed();
    }
    bool on_open_ack(uint32_t stream_id, const MetadataView& metadata) noexcept {
        FERRY_CHECK(stream_id != 0 && stream_id <= kMaxStreamId);
        digest.mix('K');
        digest.mix(stream_id);
        digest.mix(metadata);
        return proceed();
    }
    bool on_trailers(uint32_t stream_id, const MetadataView& metadata) noexcept {
        FERRY_CHECK(stream_id != 0 && stream_id <= kMaxStreamId);
        digest.mix('T');
        digest.mix(stream_id);
        digest.mix(metadata);
        return proceed();
    }

  private:
    bool proceed() noexcept {
        ++events;
        return stop_every == 0 || events % stop_every != 0;
    }
};

struct RunResult {
    uint64_t digest;
    DecodeStatus status;
    ErrorCode code;
};

// Feeds `input` in chunks of `chunk_size`, each copied to its own allocation so that any read
// outside the fed span is an ASan report; resumes after every Stopped.
RunResult run(std::span<const std::byte> input, size_t chunk_size, unsigned stop_every) {
    CheckingSink sink;
    sink.stop_every = stop_every;
    FrameDecoder<CheckingSink> decoder(sink);
    DecodeResult result{0, DecodeStatus::Ok, ErrorCode::NoError, nullptr};
    for (size_t pos = 0; pos < input.size() && result.status != DecodeStatus::Error;) {
        const size_t n = std::min(chunk_size, input.size() - pos);
        const std::vector<std::byte> copy(input.begin() + static_cast<std::ptrdiff_t>(pos),
                                          input.begin() + static_cast<std::ptrdiff_t>(pos + n));
        std::span<const std::byte> rest(copy);
        sink.last_piece_end = nullptr;
        for (;;) {
            sink.chunk = rest;
            result = decoder.feed(rest);
            FERRY_CHECK(result.consumed <= rest.size());
            if (result.status == DecodeStatus::Ok) {
                FERRY_CHECK(result.consumed == rest.size());
                break;
            }
            if (result.status == DecodeStatus::Error) {
                FERRY_CHECK(result.detail != nullptr && result.detail[0] != '\0');
                FERRY_CHECK(decoder.failed());
                const DecodeResult again = decoder.feed(rest);
                FERRY_CHECK(again.status == DecodeStatus::Error && again.consumed == 0 &&
                            again.code == result.code);
                break;
            }
            rest = rest.subspan(result.consumed);
        }
        pos += n;
    }
    return {sink.digest.h, result.status, result.code};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const size_t chunk_size = (data[0] & 0x3fU) + 1;
    const unsigned stop_every = data[0] >> 6;
    const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data + 1), size - 1);

    const RunResult whole = run(input, input.size() + 1, 0);
    const RunResult chunked = run(input, chunk_size, stop_every);
    FERRY_CHECK(whole.digest == chunked.digest);
    FERRY_CHECK(whole.status == chunked.status);
    FERRY_CHECK(whole.code == chunked.code);
    return 0;
}
