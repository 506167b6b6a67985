// RecordAssembler: finds whole TLS records in ciphertext as it arrives, so each can be opened in
// place (tls::RecordLayer::open). Pure: bytes in, records out; no I/O, no clock.
//
// Sits between a transport's receives and the record layer. A record that lies inside one
// receive buffer comes out as a slice of that buffer (no copy); only a record that straddles two
// buffers is gathered, into one fresh buffer from the caller's allocator — the one copy of the
// path, reported in Next::copied. When the allocator has no buffer the assembler holds what it
// has, in order, and the caller asks again later (no byte is dropped, nothing is reordered).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ferry/buf/chunk_queue.h"
#include "ferry/buf/pool.h"
#include "ferry/tls/record_layer.h"

namespace ferry::tls {

class RecordAssembler final {
  public:
    enum class Status : uint8_t {
        Record,      // `record` holds exactly one whole record (header included), writable
        NeedMore,    // every byte given so far is consumed or held; push more
        NeedBuffer,  // a split record needs a buffer and the allocator had none: retry later
        TooLarge,    // the next record cannot fit one buffer (the peer's records are too big)
    };
    struct Next {
        Status status = Status::NeedMore;
        buf::Chunk record;
        uint32_t copied = 0;  // bytes gathered (copied) during this call
    };

    // `nodes` holds the queue of input chunks; shard-affine like the chunks themselves.
    explicit RecordAssembler(buf::NodePool& nodes) noexcept : nodes_(nodes) {}
    ~RecordAssembler() { clear(); }
    RecordAssembler(const RecordAssembler&) = delete;
    RecordAssembler& operator=(const RecordAssembler&) = delete;

    // Appends ciphertext, in stream order.
    void push(buf::Chunk&& bytes) noexcept {
        if (bytes.size() > 0) {
            in_.push(nodes_, std::move(bytes));
        }
    }

    // The next whole record. `alloc()` returns a fresh, empty-sized buf::Chunk (or an empty
    // Chunk when none is free); it is called only to gather a record split across buffers.
    template <class Alloc>
    [[nodiscard]] Next next(Alloc&& alloc) noexcept;

    // True when nothing is held: the input so far ended exactly on a record boundary (the point
    // at which the keys may go into the kernel).
    [[nodiscard]] bool empty() const noexcept { return in_.empty() && partial_.empty(); }
    // Bytes held: queued input plus a partly gathered record.
    [[nodiscard]] uint64_t held_bytes() const noexcept { return in_.bytes() + partial_len_; }
    void clear() noexcept {
        in_.clear(nodes_);
        partial_.reset();
        partial_len_ = 0;
    }

  private:
    // Copies from the input into partial_ until it holds `need` bytes; false when input ran out.
    bool gather(uint32_t need, uint32_t* copied) noexcept;

    buf::NodePool& nodes_;
    buf::ChunkQueue in_;
    buf::Chunk partial_;  // a record being gathered across buffers (non-empty while gathering)
    uint32_t partial_len_ = 0;
};

template <class Alloc>
RecordAssembler::Next RecordAssembler::next(Alloc&& alloc) noexcept {
    Next out;
    for (;;) {
        if (!partial_.empty()) {
            // Finish the record that started in an earlier buffer: its header first, which
            // gives its size, then the rest of it.
            if (!gather(static_cast<uint32_t>(kRecordHeaderLen), &out.copied)) {
                out.status = Status::NeedMore;
                return out;
            }
            const size_t need = record_size({partial_.data(), partial_len_});
            if (need > partial_.capacity()) {
                out.status = Status::TooLarge;
                return out;
            }
            if (!gather(static_cast<uint32_t>(need), &out.copied)) {
                out.status = Status::NeedMore;
                return out;
            }
            partial_.set_size(partial_len_);
            partial_len_ = 0;
            out.record = std::move(partial_);
            out.status = Status::Record;
            return out;
        }
        if (in_.empty()) {
            out.status = Status::NeedMore;
            return out;
        }
        buf::Chunk& front = in_.front();
        const size_t size = record_size(front.span());
        if (size != 0 && size <= front.size()) {
            // The whole record is here: hand out a slice of the receive buffer, no copy.
            out.record = front.share(0, static_cast<uint32_t>(size));
            in_.consume(nodes_, size);
            out.status = Status::Record;
            return out;
        }
        // The record continues in a later buffer: gather it into one of its own.
        partial_ = alloc();
        if (partial_.empty()) {
            out.status = Status::NeedBuffer;
            return out;
        }
        partial_.set_size(0);
    }
}

inline bool RecordAssembler::gather(uint32_t need, uint32_t* copied) noexcept {
    while (partial_len_ < need) {
        if (in_.empty()) {
            return false;
        }
        buf::Chunk& front = in_.front();
        const uint32_t take = std::min(need - partial_len_, front.size());
        std::memcpy(partial_.data() + partial_len_, front.data(), take);
        partial_len_ += take;
        *copied += take;
        in_.consume(nodes_, take);
    }
    return true;
}

}  // namespace ferry::tls
