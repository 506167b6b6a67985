// Streaming UTF-8 validation for WebSocket text messages and close reasons (RFC 6455 §8.1): the
// parser feeds each unmasked piece of a text message as it arrives and fails on the first byte
// that cannot be part of well-formed UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace ferry::proto::ws {

// Well-formed UTF-8 per RFC 3629 / Unicode Table 3-7: no overlong forms, no surrogates
// (U+D800-U+DFFF), nothing above U+10FFFF, no C0, C1 or F5-FF bytes. A small DFA over byte
// classes; runs of ASCII are checked 8 bytes at a time. 1 byte of state, no allocation, so a
// sequence may be split anywhere between feeds.
class Utf8Validator final {
  public:
    // Returns the number of bytes of `bytes` accepted: bytes.size() when they all continue a
    // well-formed prefix, else the index of the first byte that cannot (the validator then stays
    // failed until reset). Rejection happens at that byte, not at the end of the sequence, so a
    // text message fails as early as its bytes allow (Autobahn 6.4.x).
    [[nodiscard]] size_t feed(std::span<const std::byte> bytes) noexcept;
    [[nodiscard]] size_t feed(std::string_view text) noexcept {
        return feed(std::as_bytes(std::span<const char>(text.data(), text.size())));
    }
    // True when everything fed so far is complete UTF-8 (no sequence left open).
    [[nodiscard]] bool is_complete() const noexcept { return state_ == kAccept; }
    [[nodiscard]] bool failed() const noexcept { return state_ == kReject; }
    void reset() noexcept { state_ = kAccept; }

    static constexpr uint8_t kAccept = 0;
    static constexpr uint8_t kReject = 1;

  private:
    uint8_t state_ = kAccept;
};

[[nodiscard]] bool is_valid_utf8(std::span<const std::byte> bytes) noexcept;
[[nodiscard]] inline bool is_valid_utf8(std::string_view text) noexcept {
    return is_valid_utf8(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

}  // namespace ferry::proto::ws
