// FIFO of Chunks (a message or stream backlog made of slices of pool buffers).
//
// Nodes come from a per-shard NodePool free list, so queueing a slice never calls malloc on the
// data path; the NodePool grows in blocks only when the backlog outgrows every earlier peak, and
// the backlog itself is bounded by flow-control windows.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "ferry/buf/pool.h"

namespace ferry::buf {

struct ChunkNode {
    Chunk chunk;
    ChunkNode* next = nullptr;
    // The queue owner's per-chunk mark (a tunnel stream keeps message boundaries here); 0 when
    // unused. Dropping bytes from the front of a chunk keeps its tag.
    uint8_t tag = 0;
};

class NodePool final {
  public:
    NodePool() = default;
    NodePool(const NodePool&) = delete;
    NodePool& operator=(const NodePool&) = delete;

    [[nodiscard]] ChunkNode* get() noexcept {
        if (free_ == nullptr) {
            grow();
        }
        ChunkNode* n = free_;
        free_ = n->next;
        n->next = nullptr;
        return n;
    }
    void put(ChunkNode* n) noexcept {
        n->chunk.reset();
        n->tag = 0;
        n->next = free_;
        free_ = n;
    }

  private:
    static constexpr size_t kBlock = 256;
    void grow();

    ChunkNode* free_ = nullptr;
    std::vector<std::unique_ptr<ChunkNode[]>> blocks_;
};

// Owns its nodes' chunks; must be cleared (or drained) before its NodePool dies.
class ChunkQueue final {
  public:
    ChunkQueue() noexcept = default;
    ChunkQueue(const ChunkQueue&) = delete;
    ChunkQueue& operator=(const ChunkQueue&) = delete;

    void swap(ChunkQueue& other) noexcept {
        std::swap(head_, other.head_);
        std::swap(tail_, other.tail_);
        std::swap(bytes_, other.bytes_);
        std::swap(count_, other.count_);
    }

    void push(NodePool& nodes, Chunk&& c, uint8_t tag = 0) noexcept {
        bytes_ += c.size();
        ChunkNode* n = nodes.get();
        n->chunk = std::move(c);
        n->tag = tag;
        if (tail_ == nullptr) {
            head_ = tail_ = n;
        } else {
            tail_->next = n;
            tail_ = n;
        }
        ++count_;
    }
    [[nodiscard]] Chunk& front() noexcept { return head_->chunk; }
    [[nodiscard]] ChunkNode* head() const noexcept { return head_; }
    // Removes the first chunk and hands it to the caller.
    [[nodiscard]] Chunk pop(NodePool& nodes) noexcept {
        ChunkNode* n = head_;
        head_ = n->next;
        if (head_ == nullptr) {
            tail_ = nullptr;
        }
        --count_;
        Chunk c = std::move(n->chunk);
        bytes_ -= c.size();
        nodes.put(n);
        return c;
    }
    // Drops `n` bytes from the front (a partial send completed), releasing finished chunks.
    void consume(NodePool& nodes, uint64_t n) noexcept {
        while (n > 0 && head_ != nullptr) {
            uint32_t sz = head_->chunk.size();
            if (n >= sz) {
                n -= sz;
                Chunk done = pop(nodes);
            } else {
                head_->chunk.trim_front(static_cast<uint32_t>(n));
                bytes_ -= n;
                n = 0;
            }
        }
    }
    void clear(NodePool& nodes) noexcept {
        while (head_ != nullptr) {
            Chunk c = pop(nodes);
        }
    }
    [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
    [[nodiscard]] uint64_t bytes() const noexcept { return bytes_; }
    [[nodiscard]] uint32_t count() const noexcept { return count_; }

  private:
    ChunkNode* head_ = nullptr;
    ChunkNode* tail_ = nullptr;
    uint64_t bytes_ = 0;
    uint32_t count_ = 0;
};

}  // namespace ferry::buf
