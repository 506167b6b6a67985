// libFuzzer target for the gRPC MessageReader. Each input is read three times: whole, in chunks
// of one size, and byte by byte, with the sink stopping the reader now and then. All runs must
// end the same way (status, code, bytes consumed) and see the same messages; pieces must lie
// inside the span being fed, add up to each message's announced length, and no message may pass
// the limit.
//
// Input layout: byte 0 picks the chunk size (low 6 bits + 1) and the limit (bit 7: 64 bytes,
// else the default); byte 1 how often the sink stops (low 2 bits: never, every 1st/2nd/3rd
// event); the rest is the DATA of one call.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ferry/base/check.h"
#include "ferry/proto/grpc/message_reader.h"

namespace {

using namespace ferry::proto::grpc;

struct Sink {
    std::span<const std::byte> fed;
    uint32_t stop_every = 0;
    uint32_t events = 0;
    uint64_t digest = 14695981039346656037ULL;
    uint32_t announced = 0;
    uint32_t got = 0;
    bool in_message = false;
    uint32_t max = 0;

    void mix(uint64_t v) noexcept {
        digest ^= v;
        digest *= 1099511628211ULL;
    }
    bool stop() noexcept { return stop_every != 0 && ++events % stop_every == 0; }

    bool on_message_start(MessagePrefix p) noexcept {
        FERRY_CHECK(!in_message);
        FERRY_CHECK(p.length <= max);
        in_message = true;
        announced = p.length;
        got = 0;
        mix(p.compressed ? 1 : 0);
        mix(p.length);
        return !stop();
    }
    bool on_message_data(std::span<const std::byte> b, bool end) noexcept {
        FERRY_CHECK(in_message);
        FERRY_CHECK(b.empty() ||
                    (b.data() >= fed.data() && b.data() + b.size() <= fed.data() + fed.size()));
        for (std::byte x : b) {
            mix(std::to_integer<uint64_t>(x));
        }
        got += static_cast<uint32_t>(b.size());
        FERRY_CHECK(got <= announced);
        FERRY_CHECK(end == (got == announced));
        if (end) {
            in_message = false;
        }
        return !stop();
    }
};

struct Outcome {
    ReadStatus status;
    StatusCode code;
    size_t consumed;
    uint64_t digest;
};

Outcome run(std::span<const std::byte> data, size_t chunk, uint32_t max, uint32_t stop_every) {
    MessageReader reader(max);
    Sink sink;
    sink.max = max;
    sink.stop_every = stop_every;
    size_t at = 0;
    while (at < data.size()) {
        const std::span<const std::byte> piece =
            data.subspan(at, std::min(chunk, data.size() - at));
        sink.fed = piece;
        const ReadResult r = reader.feed(piece, sink);
        at += r.consumed;
        if (r.status == ReadStatus::Error) {
            return {r.status, r.code, at, sink.digest};
        }
    }
    return {ReadStatus::NeedMore, StatusCode::Ok, at, sink.digest};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* raw, size_t size) {
    if (size < 2) {
        return 0;
    }
    const size_t chunk = (raw[0] & 0x3f) + 1;
    const uint32_t max = (raw[0] & 0x80) != 0 ? 64 : kDefaultMaxMessageSize;
    const uint32_t stop_every = raw[1] & 3;
    const std::span<const std::byte> data(reinterpret_cast<const std::byte*>(raw + 2), size - 2);
    const Outcome whole = run(data, data.size() + 1, max, stop_every);
    const Outcome chunked = run(data, chunk, max, stop_every);
    const Outcome bytewise = run(data, 1, max, stop_every);
    for (const Outcome& o : {chunked, bytewise}) {
        FERRY_CHECK(o.status == whole.status);
        FERRY_CHECK(o.code == whole.code);
        FERRY_CHECK(o.consumed == whole.consumed);
        FERRY_CHECK(o.digest == whole.digest);
    }
    return 0;
}
