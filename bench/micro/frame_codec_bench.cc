// Tunnel codec: FrameDecoder throughput on DATA and control frames, and the encoder's headers.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ferry/proto/tunnel/frame.h"
#include "ferry/proto/tunnel/frame_decoder.h"
#include "ferry/proto/tunnel/frame_encoder.h"

namespace ferry::proto::tunnel {
namespace {

// Counts what the session would act on, so no event can be optimized away.
struct CountingSink {
    uint64_t frames = 0;
    uint64_t bytes = 0;
    bool on_hello(const Hello&) noexcept { return true; }
    bool on_open(uint32_t, const Open& open) noexcept {
        ++frames;
        bytes += open.routing_key.size();
        return true;
    }
    bool on_data(uint32_t, std::span<const std::byte> piece, DataFlags flags) noexcept {
        bytes += piece.size();
        frames += flags.fin() || flags.end_message() ? 1U : 0U;
        return true;
    }
    bool on_window(uint32_t, uint32_t increment) noexcept {
        ++frames;
        bytes += increment & 1;
        return true;
    }
    bool on_reset(uint32_t, ErrorCode, std::string_view reason) noexcept {
        ++frames;
        bytes += reason.size();
        return true;
    }
    bool on_ping(bool, uint64_t opaque) noexcept {
        ++frames;
        bytes += opaque & 1;
        return true;
    }
    bool on_goaway(uint32_t, ErrorCode, std::string_view) noexcept {
        ++frames;
        return true;
    }
    bool on_open_ack(uint32_t, const MetadataView& metadata) noexcept {
        ++frames;
        bytes += metadata.size();
        return true;
    }
    bool on_trailers(uint32_t, const MetadataView& metadata) noexcept {
        ++frames;
        bytes += metadata.size();
        return true;
    }
};

class Buffer {
  public:
    template <typename Encode>
    void put(size_t size, Encode encode) {
        const size_t at = bytes.size();
        bytes.resize(at + size);
        bytes.resize(at + encode(std::span<std::byte>(bytes).subspan(at)));
    }
    std::vector<std::byte> bytes;
};

std::vector<std::byte> session_start() {
    Buffer b;
    b.put(kPrefaceSize, [](auto out) { return encode_preface(out); });
    HelloSettings hello;
    hello.node_name = "ferry-bench";
    b.put(hello_frame_size(hello), [&](auto out) { return encode_hello(out, hello); });
    return b.bytes;
}

// About 1 MiB of DATA frames of `payload` bytes each, every one with FIN so the sink counts it.
std::vector<std::byte> data_frames(uint32_t payload, size_t* frames) {
    Buffer b;
    *frames = 0;
    while (b.bytes.size() < (1U << 20)) {
        b.put(kFrameHeaderSize, [&](auto out) {
            return encode_data_header(out, static_cast<uint32_t>(1 + 2 * (*frames % 64)), payload,
                                      true);
        });
        b.bytes.resize(b.bytes.size() + payload, std::byte{0x5a});
        ++*frames;
    }
    return b.bytes;
}

// A mix of what flows beside the data: credit, pings, resets and stream opens.
std::vector<std::byte> control_frames(size_t* frames) {
    Buffer b;
    *frames = 0;
    while (b.bytes.size() < (256U << 10)) {
        const auto id = static_cast<uint32_t>(1 + 2 * (*frames % 512));
        switch (*frames % 4) {
            case 0:
                b.put(kWindowFrameSize, [&](auto out) { return encode_window(out, id, 65536); });
                break;
            case 1:
                b.put(kPingFrameSize, [&](auto out) { return encode_ping(out, false, *frames); });
                break;
            case 2:
                b.put(kResetFrameSize,
                      [&](auto out) { return encode_reset(out, id, ErrorCode::Cancel); });
                break;
            default:
                b.put(open_frame_size(StreamProtocol::Tcp, "orders.svc:8080", {}), [&](auto out) {
                    return encode_open(out, id, StreamProtocol::Tcp, "orders.svc:8080", {});
                });
                break;
        }
        ++*frames;
    }
    return b.bytes;
}

// Decodes the same frames again and again with one decoder (it ends every pass between frames).
void run_decoder(benchmark::State& state, const std::vector<std::byte>& frames, size_t frame_count,
                 size_t piece) {
    CountingSink sink;
    FrameDecoder<CountingSink> decoder(sink);
    const std::vector<std::byte> start = session_start();
    if (decoder.feed(start).status != DecodeStatus::Ok) {
        state.SkipWithError("HELLO did not decode");
        return;
    }
    const std::span<const std::byte> all(frames);
    for (auto _ : state) {
        for (size_t off = 0; off < all.size(); off += piece) {
            const DecodeResult r =
                decoder.feed(all.subspan(off, std::min(piece, all.size() - off)));
            benchmark::DoNotOptimize(r);
        }
    }
    benchmark::DoNotOptimize(sink.bytes);
    if (!decoder.at_frame_boundary() || decoder.failed()) {
        state.SkipWithError("decoder did not end between frames");
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(all.size()));
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(frame_count));
}

void BM_DecodeDataFrames(benchmark::State& state) {
    size_t count = 0;
    const std::vector<std::byte> frames =
        data_frames(static_cast<uint32_t>(state.range(0)), &count);
    run_decoder(state, frames, count, frames.size());
}
BENCHMARK(BM_DecodeDataFrames)->Arg(1024)->Arg(16384);

// The same stream arriving in 16 KiB receive buffers: frames straddle feeds.
void BM_DecodeDataFramesIn16KiBReads(benchmark::State& state) {
    size_t count = 0;
    const std::vector<std::byte> frames =
        data_frames(static_cast<uint32_t>(state.range(0)), &count);
    run_decoder(state, frames, count, 16384);
}
BENCHMARK(BM_DecodeDataFramesIn16KiBReads)->Arg(1024)->Arg(16384);

void BM_DecodeControlFrames(benchmark::State& state) {
    size_t count = 0;
    const std::vector<std::byte> frames = control_frames(&count);
    run_decoder(state, frames, count, frames.size());
}
BENCHMARK(BM_DecodeControlFrames);

void BM_EncodeDataHeader(benchmark::State& state) {
    alignas(8) std::byte out[kFrameHeaderSize];
    uint32_t id = 1;
    for (auto _ : state) {
        size_t n = encode_data_header(out, id, 16384, false);
        benchmark::DoNotOptimize(n);
        benchmark::DoNotOptimize(out);
        id = (id + 2) & 0xffff;
        id |= 1;
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_EncodeDataHeader);

void BM_EncodeWindow(benchmark::State& state) {
    alignas(8) std::byte out[kWindowFrameSize];
    uint32_t increment = 1;
    for (auto _ : state) {
        size_t n = encode_window(out, 0, increment);
        benchmark::DoNotOptimize(n);
        benchmark::DoNotOptimize(out);
        increment = (increment % 1000000) + 1;
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_EncodeWindow);

}  // namespace
}  // namespace ferry::proto::tunnel
