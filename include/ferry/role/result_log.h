// ResultLog: the most recent message results of this process, for the admin port's GET /output
// (the sink's answers at the terminator, the replies to triggered messages at the initiator).
//
// One bounded ring per shard, each behind its own mutex: a shard appends to its own (the lock is
// uncontended but for the rare admin read), the admin port reads them all and merges by order of
// arrival. Made once per process, before the shards start.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ferry/role/admin_endpoint.h"

namespace ferry::role {

class ResultLog final {
  public:
    ResultLog(size_t shards, size_t per_shard) noexcept;

    // Shard `shard` adds one result, a JSON object (serialized); the oldest of its ring goes.
    void record(size_t shard, std::string json) noexcept;
    // {"results": [...]}: the `limit` most recent of the process, newest first.
    [[nodiscard]] std::string render(size_t limit) const;

  private:
    struct Entry {
        uint64_t order;
        std::string json;
    };
    struct Ring {
        mutable std::mutex mu;
        std::deque<Entry> entries;
    };
    size_t per_shard_;
    std::vector<std::unique_ptr<Ring>> rings_;
    std::atomic<uint64_t> order_{0};
};

// GET /output.
class OutputEndpoint final : public AdminEndpoint {
  public:
    explicit OutputEndpoint(const ResultLog& log) noexcept : log_(log) {}
    void serve(std::string_view method, std::string_view query, std::string_view body,
               AdminReply& reply) noexcept override;
    void cancel(AdminReply&) noexcept override {}

  private:
    const ResultLog& log_;
};

// A shortened copy of `text` for a result: at most `max` bytes, cut on a UTF-8 boundary.
[[nodiscard]] std::string preview(std::string_view text, size_t max);

}  // namespace ferry::role
