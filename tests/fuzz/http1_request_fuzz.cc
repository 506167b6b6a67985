// libFuzzer target for the HTTP/1.1 RequestParser. The input is parsed as a pipeline of requests
// twice, whole and in chunks; both runs must give the same sequence of results and heads. Every
// view the parser exposes is read byte by byte and must not point into the caller's input.
//
// Input layout: byte 0 picks the chunk size (low 6 bits + 1) and the head limit (bit 7: 256
// bytes, else the 8 KiB default); the rest is what a client sends on one connection.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ferry/base/check.h"
#include "ferry/proto/http1/request_parser.h"

namespace {

using namespace ferry::proto::http1;

constexpr int kMaxRequests = 16;

struct Digest {
    uint64_t h = 14695981039346656037ULL;
    void mix(uint64_t v) noexcept {
        h ^= v;
        h *= 1099511628211ULL;
    }
};

class Checker {
  public:
    explicit Checker(std::span<const std::byte> input) : input_(input) {}

    void touch(std::string_view s) noexcept {
        if (!s.empty()) {
            const auto* p = reinterpret_cast<const std::byte*>(s.data());
            // The parser hands out views of its own copy, never of the caller's bytes.
            FERRY_CHECK(p + s.size() <= input_.data() || p >= input_.data() + input_.size());
        }
        digest.mix(s.size());
        for (char c : s) {
            digest.mix(static_cast<unsigned char>(c));
        }
    }

    void check_head(const RequestParser& p) noexcept {
        FERRY_CHECK(!p.method().empty() && !p.target().empty());
        FERRY_CHECK(p.version_minor() >= 0 && p.version_minor() <= 9);
        FERRY_CHECK(p.headers().size() <= kMaxHeaderFields);
        FERRY_CHECK(p.content_length() >= -1);
        FERRY_CHECK(!p.chunked() || p.content_length() == -1);
        FERRY_CHECK(p.path().size() + (p.query().empty() ? 0 : p.query().size() + 1) <=
                    p.target().size());
        touch(p.method());
        touch(p.target());
        touch(p.path());
        touch(p.query());
        for (const auto& h : p.headers()) {
            touch(h.name);
            touch(h.value);
            const auto found = p.header(h.name);
            FERRY_CHECK(found.has_value());
        }
        digest.mix(static_cast<uint64_t>(p.content_length()));
        digest.mix((p.chunked() ? 1U : 0U) | (p.connection_close() ? 2U : 0U) |
                   (p.connection_upgrade() ? 4U : 0U));
    }

    Digest digest;

  private:
    std::span<const std::byte> input_;
};

// Parses up to kMaxRequests heads back to back, feeding `chunk_size` bytes at a time.
uint64_t run(std::span<const std::byte> input, size_t chunk_size, size_t max_head_size) {
    RequestParser parser(max_head_size);
    Checker checker(input);
    int requests = 0;
    for (size_t pos = 0; pos < input.size() && requests < kMaxRequests;) {
        const size_t n = std::min(chunk_size, input.size() - pos);
        const ParseResult r = parser.feed(input.subspan(pos, n));
        FERRY_CHECK(r.consumed <= n);
        pos += r.consumed;
        if (r.status == ParseStatus::NeedMore) {
            FERRY_CHECK(r.consumed == n && r.http_status == 0);
            continue;
        }
        checker.digest.mix(static_cast<uint64_t>(r.status));
        checker.digest.mix(pos);
        if (r.status == ParseStatus::Error) {
            FERRY_CHECK(r.http_status == 400 || r.http_status == 431 || r.http_status == 501 ||
                        r.http_status == 505);
            FERRY_CHECK(r.detail != nullptr && r.detail[0] != '\0');
            checker.digest.mix(static_cast<uint64_t>(r.http_status));
            break;
        }
        checker.check_head(parser);
        // Without a reset the parser must hold its result and take nothing more.
        FERRY_CHECK(parser.feed(input.subspan(pos)).consumed == 0);
        parser.reset();
        ++requests;
    }
    return checker.digest.h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const size_t chunk_size = (data[0] & 0x3fU) + 1;
    const size_t max_head_size = (data[0] & 0x80U) != 0 ? 256 : kDefaultMaxHeadSize;
    const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data + 1), size - 1);
    FERRY_CHECK(run(input, input.size() + 1, max_head_size) ==
                run(input, chunk_size, max_head_size));
    return 0;
}
