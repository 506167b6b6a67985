// libFuzzer target for the gRPC tunnel's ChunkReader (what a terminator parses from any peer that
// reaches its tunnel port with --tunnel-transport=grpc). Each input is read whole, in chunks of
// one size and byte by byte: all runs must end the same way (status, code) having handed up the
// same bytes, and every piece must lie inside the span being fed.
//
// Input layout: byte 0 picks the chunk size (low 6 bits + 1) and the limit (bit 7: 64 bytes, else
// the default); the rest is the DATA of one call.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ferry/base/check.h"
#include "ferry/proto/grpc/tunnel_chunk.h"

namespace {

using namespace ferry::proto::grpc;

struct Sink {
    std::span<const std::byte> fed;
    uint64_t digest = 14695981039346656037ULL;
    uint64_t bytes = 0;

    bool on_chunk_data(std::span<const std::byte> b) noexcept {
        FERRY_CHECK(!b.empty());
        FERRY_CHECK(b.data() >= fed.data() && b.data() + b.size() <= fed.data() + fed.size());
        for (std::byte x : b) {
            digest ^= std::to_integer<uint64_t>(x);
            digest *= 1099511628211ULL;
        }
        bytes += b.size();
        return true;
    }
};

struct Outcome {
    ReadStatus status;
    StatusCode code;
    uint64_t digest;
    uint64_t bytes;
    bool boundary;
};

Outcome run(std::span<const std::byte> data, size_t chunk, uint32_t max) {
    ChunkReader reader(max);
    Sink sink;
    size_t at = 0;
    while (at < data.size()) {
        const std::span<const std::byte> piece =
            data.subspan(at, std::min(chunk, data.size() - at));
        sink.fed = piece;
        const ReadResult r = reader.feed(piece, sink);
        if (r.status == ReadStatus::Error) {
            return {r.status, r.code, sink.digest, sink.bytes, false};
        }
        FERRY_CHECK(r.consumed == piece.size());
        at += piece.size();
    }
    return {ReadStatus::NeedMore, StatusCode::Ok, sink.digest, sink.bytes, reader.at_boundary()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* raw, size_t size) {
    if (size < 1) {
        return 0;
    }
    const size_t chunk = (raw[0] & 0x3f) + 1;
    const uint32_t max = (raw[0] & 0x80) != 0 ? 64 : kDefaultMaxMessageSize;
    const std::span<const std::byte> data(reinterpret_cast<const std::byte*>(raw + 1), size - 1);
    const Outcome whole = run(data, data.size() + 1, max);
    for (const Outcome& o : {run(data, chunk, max), run(data, 1, max)}) {
        FERRY_CHECK(o.status == whole.status);
        FERRY_CHECK(o.code == whole.code);
        FERRY_CHECK(o.digest == whole.digest);
        FERRY_CHECK(o.bytes == whole.bytes);
        FERRY_CHECK(o.boundary == whole.boundary);
    }
    return 0;
}
