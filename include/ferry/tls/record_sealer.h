// RecordSealer: protects a gather list of plaintext (the tunnel's write batch) as TLS records
// written straight into pool buffers, and goes on where it stopped when buffers ran out. Pure:
// no I/O; the caller sends the sealed buffers.
//
// The cipher reads each plaintext byte once and writes each ciphertext byte once: no staging
// copy. Records are at most `max_record` bytes on the wire, so a receiver with the same buffer
// size can always gather a split record into one buffer and open it in place.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <span>

#include "ferry/buf/pool.h"
#include "ferry/tls/record_layer.h"

namespace ferry::tls {

class RecordSealer final {
  public:
    static constexpr uint32_t kMaxPieces = 256;

    // A new gather list of at most kMaxPieces entries; the memory it names is borrowed until
    // done() (the iovec array itself is not kept).
    void start(const iovec* iov, uint32_t count) noexcept {
        count_ = std::min(count, kMaxPieces);
        for (uint32_t i = 0; i < count_; ++i) {
            pieces_[i] = {static_cast<const std::byte*>(iov[i].iov_base), iov[i].iov_len};
        }
        first_ = 0;
        skip_empty();
    }
    [[nodiscard]] bool done() const noexcept { return first_ >= count_; }

    // Seals what is left into buffers from `alloc()` (an empty Chunk when none is free), each
    // filled with whole records and handed to `out(buf::Chunk&&)`. Returns the plaintext bytes
    // sealed by this call; done() says whether everything is.
    template <class Alloc, class Out>
    uint64_t seal(RecordLayer& records, uint32_t max_record, Alloc&& alloc, Out&& out) noexcept;

  private:
    void skip_empty() noexcept {
        while (first_ < count_ && pieces_[first_].empty()) {
            ++first_;
        }
    }

    // What is left to seal: pieces_[first_..count_), the first one trimmed as it is consumed.
    std::span<const std::byte> pieces_[kMaxPieces];
    uint32_t count_ = 0;
    uint32_t first_ = 0;
};

template <class Alloc, class Out>
uint64_t RecordSealer::seal(RecordLayer& records, uint32_t max_record, Alloc&& alloc,
                            Out&& out) noexcept {
    uint64_t sealed = 0;
    while (!done()) {
        buf::Chunk buffer = alloc();
        if (buffer.empty()) {
            break;
        }
        uint32_t used = 0;
        while (!done() && buffer.capacity() - used > kRecordOverhead) {
            const uint32_t room = std::min(buffer.capacity() - used, max_record);
            const SealResult r =
                records.seal({pieces_ + first_, count_ - first_}, {buffer.data() + used, room});
            if (r.written == 0) {
                break;
            }
            used += static_cast<uint32_t>(r.written);
            sealed += r.consumed;
            // Advance past what the record took.
            size_t left = r.consumed;
            while (left > 0) {
                const size_t n = std::min(left, pieces_[first_].size());
                pieces_[first_] = pieces_[first_].subspan(n);
                left -= n;
                skip_empty();
            }
        }
        if (used == 0) {
            break;  // nothing fits (cannot happen with a buffer above one record's overhead)
        }
        buffer.set_size(used);
        out(std::move(buffer));
    }
    return sealed;
}

}  // namespace ferry::tls
