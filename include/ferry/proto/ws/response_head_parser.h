// Incremental HTTP/1.1 response-head parser for the client side of the WebSocket opening
// handshake (RFC 6455 §4.1): the bytes a server answers an Upgrade request with in, one
// validated status line and header section out. Whatever follows the head is WebSocket frames.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "ferry/proto/http1/request_parser.h"

namespace ferry::proto::ws {

inline constexpr size_t kDefaultMaxResponseHeadSize = size_t{8} * 1024;
inline constexpr size_t kMaxResponseHeaderFields = 64;

// Complete: the head ended inside this input; `consumed` stops right after its blank line and
// input[consumed..] belongs to the next protocol (frames after a 101). NeedMore: all input was
// taken. Error: the server's answer is not a valid head; `detail` is a static reason.
enum class HeadStatus : uint8_t { Complete, NeedMore, Error };

struct HeadResult {
    size_t consumed;
    HeadStatus status;
    const char* detail;  // null unless Error
};

// Parses one response head, used from one thread. Like http1::RequestParser it copies the head
// into one buffer of max_head_size bytes allocated in the constructor (feed() never allocates),
// its views point into that copy and stay valid until reset(), and it is as strict: CRLF line
// ends only, no obs-fold, no whitespace before a colon, token field names, no control
// characters in values. Only HTTP/1.x is accepted. After Complete or Error, feed() consumes
// nothing and repeats the result until reset().
class ResponseHeadParser final {
  public:
    explicit ResponseHeadParser(size_t max_head_size = kDefaultMaxResponseHeadSize) noexcept;
    ResponseHeadParser(const ResponseHeadParser&) = delete;
    ResponseHeadParser& operator=(const ResponseHeadParser&) = delete;

    [[nodiscard]] HeadResult feed(std::span<const std::byte> input) noexcept;
    [[nodiscard]] HeadResult feed(std::string_view input) noexcept {
        return feed(std::as_bytes(std::span<const char>(input.data(), input.size())));
    }
    void reset() noexcept;

    [[nodiscard]] int version_minor() const noexcept { return version_minor_; }
    [[nodiscard]] int status_code() const noexcept { return status_code_; }
    [[nodiscard]] std::string_view reason_phrase() const noexcept { return reason_; }
    [[nodiscard]] std::span<const http1::HeaderField> headers() const noexcept {
        return {headers_.data(), header_count_};
    }
    // First field with this name, compared case-insensitively (RFC 9110 §5.1).
    [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept;

  private:
    // Where the scan is relative to line ends, so a CRLF split across feeds is still seen.
    enum class Scan : uint8_t { Line, LineCr, LineStart, LineStartCr, Done };

    HeadResult fail(size_t consumed, const char* detail) noexcept;
    // Validates the buffered head and fills the accessors; returns null or a static reason.
    const char* parse_head() noexcept;
    const char* parse_status_line(std::string_view line) noexcept;

    std::unique_ptr<char[]> head_;
    size_t max_head_size_;
    size_t size_ = 0;
    const char* detail_ = nullptr;
    Scan scan_ = Scan::Line;
    bool failed_ = false;

    int version_minor_ = 1;
    int status_code_ = 0;
    std::string_view reason_;
    std::array<http1::HeaderField, kMaxResponseHeaderFields> headers_{};
    size_t header_count_ = 0;
};

}  // namespace ferry::proto::ws
