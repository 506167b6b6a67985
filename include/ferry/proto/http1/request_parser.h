// Incremental HTTP/1.1 request-head parser (RFC 9112) for the admin port and WebSocket Upgrade:
// bytes from the socket in, one validated head out. The body stays with the caller.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace ferry::proto::http1 {

inline constexpr size_t kDefaultMaxHeadSize = 8 * 1024;
inline constexpr size_t kMaxHeaderFields = 64;
inline constexpr size_t kInitialHeadCapacity = 1024;

// Complete: the head ended inside this input; `consumed` stops right after its blank line, so
// the caller keeps input[consumed..] as body or the next request. NeedMore: all input was taken
// (consumed == input.size()). Error: answer `http_status` (400, 431, 501 or 505) and close;
// `detail` is a static string for the log.
enum class ParseStatus : uint8_t { Complete, NeedMore, Error };

struct ParseResult {
    size_t consumed;
    ParseStatus status;
    int http_status;  // 0 unless status == Error
    const char* detail;
};

struct HeaderField {
    std::string_view name;
    std::string_view value;  // optional whitespace around it already removed
};

// Parses one request head at a time, used from one thread. It copies the head into a buffer that
// starts at kInitialHeadCapacity bytes (most heads: a WebSocket upgrade is a few hundred) and
// grows 4x at a time up to max_head_size, so ten thousand handshakes in flight do not each hold
// the largest head allowed (nginx's client_header_buffer_size / large_client_header_buffers).
// The accessors are valid after Complete until reset() or destruction, and their views point
// into that copy.
// After Complete or Error, feed() consumes nothing and repeats the result until reset().
//
// Stricter than RFC 9112 allows in places, because a lenient head parser is how request
// smuggling starts: line endings must be CRLF (bare CR or LF is 400), obs-fold is 400, and so is
// whitespace before a colon. Leading empty lines before the request line are skipped (§2.2).
class RequestParser final {
  public:
    explicit RequestParser(size_t max_head_size = kDefaultMaxHeadSize) noexcept;
    RequestParser(const RequestParser&) = delete;
    RequestParser& operator=(const RequestParser&) = delete;

    [[nodiscard]] ParseResult feed(std::span<const std::byte> input) noexcept;
    [[nodiscard]] ParseResult feed(std::string_view input) noexcept {
        return feed(std::as_bytes(std::span<const char>(input.data(), input.size())));
    }
    // Forgets the current head so the next request on the connection can be parsed.
    void reset() noexcept;

    [[nodiscard]] std::string_view method() const noexcept { return method_; }
    // The request-target as sent: origin-form "/path?query", or absolute/authority/asterisk form.
    [[nodiscard]] std::string_view target() const noexcept { return target_; }
    // target() up to the first '?', and what follows it (empty when there is no '?').
    [[nodiscard]] std::string_view path() const noexcept;
    [[nodiscard]] std::string_view query() const noexcept;
    [[nodiscard]] int version_minor() const noexcept { return version_minor_; }
    [[nodiscard]] std::span<const HeaderField> headers() const noexcept {
        return {headers_.data(), header_count_};
    }
    // First field with this name, compared case-insensitively (RFC 9110 §5.1).
    [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept;
    // Body length from Content-Length, or -1 when absent (then there is no body unless chunked).
    [[nodiscard]] int64_t content_length() const noexcept { return content_length_; }
    // Transfer-Encoding: chunked; the caller decodes the body or answers 411.
    [[nodiscard]] bool chunked() const noexcept { return chunked_; }
    // The connection closes after this exchange (RFC 9112 §9.3: version default plus Connection).
    [[nodiscard]] bool connection_close() const noexcept { return connection_close_; }
    // Connection lists "upgrade" (the WebSocket handshake checks the rest).
    [[nodiscard]] bool connection_upgrade() const noexcept { return connection_upgrade_; }

  private:
    // Where the scan is relative to line ends, so a CRLF split across feeds is still seen.
    enum class Scan : uint8_t { Start, StartCr, Line, LineCr, LineStart, LineStartCr, Done };

    ParseResult fail(size_t consumed, int http_status, const char* detail) noexcept;
    // Validates the buffered head and fills the accessors; returns 0 or an HTTP status.
    int parse_head() noexcept;
    int parse_request_line(std::string_view line) noexcept;
    int parse_field(std::string_view line) noexcept;
    int apply_framing_fields() noexcept;

    // Grows the head buffer; false at max_head_size.
    [[nodiscard]] bool grow() noexcept;

    std::unique_ptr<char[]> head_;
    size_t capacity_;
    size_t max_head_size_;
    size_t size_ = 0;  // head bytes buffered
    const char* detail_ = nullptr;
    int error_status_ = 0;
    Scan scan_ = Scan::Start;
    bool failed_ = false;

    std::string_view method_;
    std::string_view target_;
    int version_minor_ = 1;
    std::array<HeaderField, kMaxHeaderFields> headers_{};
    size_t header_count_ = 0;
    int64_t content_length_ = -1;
    bool chunked_ = false;
    bool connection_close_ = false;
    bool connection_upgrade_ = false;
};

}  // namespace ferry::proto::http1
