#include "ferry/role/result_log.h"

#include <algorithm>

namespace ferry::role {

ResultLog::ResultLog(size_t shards, size_t per_shard) noexcept : per_shard_(per_shard) {
    for (size_t i = 0; i < shards; ++i) {
        rings_.push_back(std::make_unique<Ring>());
    }
}

void ResultLog::record(size_t shard, std::string json) noexcept {
    if (shard >= rings_.size() || per_shard_ == 0) {
        return;
    }
    Ring& r = *rings_[shard];
    const uint64_t order = order_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(r.mu);
    if (r.entries.size() >= per_shard_) {
        r.entries.pop_front();
    }
    r.entries.push_back({order, std::move(json)});
}

std::string ResultLog::render(size_t limit) const {
    std::vector<Entry> all;
    for (const auto& r : rings_) {
        std::lock_guard<std::mutex> lock(r->mu);
        all.insert(all.end(), r->entries.begin(), r->entries.end());
    }
    std::sort(all.begin(), all.end(),
              [](const Entry& a, const Entry& b) { return a.order > b.order; });
    std::string out = "{\"results\":[";
    for (size_t i = 0; i < all.size() && i < limit; ++i) {
        if (i > 0) {
            out += ',';
        }
        out += all[i].json;
    }
    out += "]}\n";
    return out;
}

void OutputEndpoint::serve(std::string_view method, std::string_view, std::string_view,
                           AdminReply& reply) noexcept {
    if (method != "GET") {
        reply.respond(405, "text/plain", "use GET\n");
        return;
    }
    reply.respond(200, "application/json", log_.render(100));
}

std::string preview(std::string_view text, size_t max) {
    if (text.size() <= max) {
        return std::string(text);
    }
    size_t n = max;
    // Back off continuation bytes (10xxxxxx) so a multi-byte character is not cut in two.
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xc0U) == 0x80U) {
        --n;
    }
    return std::string(text.substr(0, n));
}

}  // namespace ferry::role
