#include "ferry/buf/chunk_queue.h"

namespace ferry::buf {

void NodePool::grow() {
    auto block = std::make_unique<ChunkNode[]>(kBlock);
    for (size_t i = 0; i < kBlock; ++i) {
        block[i].next = free_;
        free_ = &block[i];
    }
    blocks_.push_back(std::move(block));
}

}  // namespace ferry::buf
