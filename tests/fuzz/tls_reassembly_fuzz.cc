// libFuzzer target: RecordAssembler, which cuts arriving ciphertext into whole TLS records. On any
// bytes, cut at any points, with buffers that may run out at any call, it must never crash or
// loop, never lose, repeat or reorder a byte, and hand out exactly the records a one-shot parse
// of the whole stream finds (differential check), refusing only a record larger than a buffer.
//
// Input: byte 0 seeds the cuts and the allocation failures; the rest is the stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "ferry/buf/chunk_queue.h"
#include "ferry/buf/pool.h"
#include "ferry/tls/record_assembler.h"
#include "ferry/tls/record_layer.h"

namespace {

constexpr uint32_t kBuffer = 2048;

// The records of `stream` parsed in one go: each whole record, then whatever is left over.
std::vector<std::string> reference(std::span<const std::byte> stream, size_t* leftover,
                                   bool* too_large) {
    std::vector<std::string> out;
    *too_large = false;
    while (true) {
        const size_t size = ferry::tls::record_size(stream);
        if (size != 0 && size > kBuffer) {
            *too_large = true;
            break;
        }
        if (size == 0 || size > stream.size()) {
            break;
        }
        out.emplace_back(reinterpret_cast<const char*>(stream.data()), size);
        stream = stream.subspan(size);
    }
    *leftover = stream.size();
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) {
        return 0;
    }
    uint32_t rng = data[0] * 2654435761U + 1;
    auto next = [&rng] {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        return rng;
    };
    const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 1), size - 1);
    size_t leftover = 0;
    bool too_large = false;
    const std::vector<std::string> expected = reference(stream, &leftover, &too_large);

    ferry::buf::Pool pool(kBuffer, 64);
    ferry::buf::NodePool nodes;
    std::vector<std::string> got;
    bool refused = false;
    {
        ferry::tls::RecordAssembler assembler(nodes);
        size_t at = 0;
        while (at < stream.size() && !refused) {
            const size_t n = std::min<size_t>(1 + next() % kBuffer, stream.size() - at);
            ferry::buf::Chunk c = pool.try_alloc();
            if (c.empty()) {
                std::abort();  // the harness never holds more than a few buffers
            }
            std::memcpy(c.data(), stream.data() + at, n);
            c.set_size(static_cast<uint32_t>(n));
            at += n;
            assembler.push(std::move(c));
            // Drain what is whole; now and then the buffers are "dry" for a call.
            for (int guard = 0;; ++guard) {
                if (guard > 100000) {
                    std::abort();  // a loop that never ends
                }
                const bool dry = next() % 4 == 0;
                ferry::tls::RecordAssembler::Next r =
                    assembler.next([&] { return dry ? ferry::buf::Chunk() : pool.try_alloc(); });
                if (r.status == ferry::tls::RecordAssembler::Status::Record) {
                    got.emplace_back(reinterpret_cast<const char*>(r.record.data()),
                                     r.record.size());
                    continue;
                }
                if (r.status == ferry::tls::RecordAssembler::Status::TooLarge) {
                    refused = true;
                }
                if (r.status == ferry::tls::RecordAssembler::Status::NeedBuffer) {
                    continue;  // retried with another roll of the dice
                }
                break;
            }
        }
        if (!refused && assembler.held_bytes() != leftover) {
            std::abort();  // bytes lost or invented
        }
    }
    if (got.size() > expected.size() || refused != too_large) {
        std::abort();
    }
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] != expected[i]) {
            std::abort();
        }
    }
    if (!refused && got.size() != expected.size()) {
        std::abort();
    }
    if (pool.free_count() != pool.buffer_count()) {
        std::abort();  // a buffer leaked
    }
    return 0;
}
