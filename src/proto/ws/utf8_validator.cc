#include "ferry/proto/ws/utf8_validator.h"

#include <array>
#include <cstring>

namespace ferry::proto::ws {
namespace {

// Byte classes of Unicode Table 3-7 ("Well-Formed UTF-8 Byte Sequences"): which bytes may follow
// a lead byte depends on the lead, so the continuation range 80-BF is cut where E0, ED, F0 and
// F4 draw their limits.
enum Class : uint8_t {
    kAscii,    // 00-7F
    kCont8x,   // 80-8F
    kCont9x,   // 90-9F
    kContAB,   // A0-BF
    kInvalid,  // C0-C1 (overlong 2-byte leads), F5-FF (beyond U+10FFFF)
    kLead2,    // C2-DF
    kE0,       // E0: A0-BF next, or it would be overlong
    kLead3,    // E1-EC, EE-EF
    kED,       // ED: 80-9F next, or it would be a surrogate
    kF0,       // F0: 90-BF next, or it would be overlong
    kLead4,    // F1-F3
    kF4,       // F4: 80-8F next, or it would exceed U+10FFFF
};
constexpr size_t kClassCount = size_t{kF4} + 1;

// States: how much of a sequence is still owed, and the range its next byte must be in.
enum State : uint8_t {
    kAccept = Utf8Validator::kAccept,
    kReject = Utf8Validator::kReject,
    kTail1,    // one byte 80-BF owed
    kTail2,    // two bytes owed
    kTail3,    // three bytes owed
    kAfterE0,  // A0-BF, then one more
    kAfterED,  // 80-9F, then one more
    kAfterF0,  // 90-BF, then two more
    kAfterF4,  // 80-8F, then two more
};
constexpr size_t kStateCount = size_t{kAfterF4} + 1;

constexpr Class class_of(unsigned b) noexcept {
    if (b < 0x80) {
        return kAscii;
    }
    if (b < 0x90) {
        return kCont8x;
    }
    if (b < 0xA0) {
        return kCont9x;
    }
    if (b < 0xC0) {
        return kContAB;
    }
    if (b < 0xC2 || b > 0xF4) {
        return kInvalid;
    }
    if (b < 0xE0) {
        return kLead2;
    }
    if (b == 0xE0) {
        return kE0;
    }
    if (b == 0xED) {
        return kED;
    }
    if (b < 0xF0) {
        return kLead3;
    }
    if (b == 0xF0) {
        return kF0;
    }
    return b == 0xF4 ? kF4 : kLead4;
}

constexpr State next_state(State s, Class c) noexcept {
    const bool cont = c == kCont8x || c == kCont9x || c == kContAB;
    switch (s) {
        case kAccept:
            switch (c) {
                case kAscii:
                    return kAccept;
                case kLead2:
                    return kTail1;
                case kE0:
                    return kAfterE0;
                case kLead3:
                    return kTail2;
                case kED:
                    return kAfterED;
                case kF0:
                    return kAfterF0;
                case kLead4:
                    return kTail3;
                case kF4:
                    return kAfterF4;
                default:
                    return kReject;
            }
        case kTail1:
            return cont ? kAccept : kReject;
        case kTail2:
            return cont ? kTail1 : kReject;
        case kTail3:
            return cont ? kTail2 : kReject;
        case kAfterE0:
            return c == kContAB ? kTail1 : kReject;
        case kAfterED:
            return c == kCont8x || c == kCont9x ? kTail1 : kReject;
        case kAfterF0:
            return c == kCont9x || c == kContAB ? kTail2 : kReject;
        case kAfterF4:
            return c == kCont8x ? kTail2 : kReject;
        default:
            return kReject;
    }
}

constexpr std::array<uint8_t, 256> kClasses = [] {
    std::array<uint8_t, 256> t{};
    for (unsigned b = 0; b < 256; ++b) {
        t[b] = class_of(b);
    }
    return t;
}();

constexpr size_t kTableSize = kStateCount * kClassCount;

// kTransitions[state * kClassCount + class] is the next state.
constexpr std::array<uint8_t, kTableSize> kTransitions = [] {
    std::array<uint8_t, kTableSize> t{};
    for (size_t s = 0; s < kStateCount; ++s) {
        for (size_t c = 0; c < kClassCount; ++c) {
            t[s * kClassCount + c] = next_state(static_cast<State>(s), static_cast<Class>(c));
        }
    }
    return t;
}();

constexpr uint64_t kHighBits = 0x8080808080808080ULL;

}  // namespace

size_t Utf8Validator::feed(std::span<const std::byte> bytes) noexcept {
    if (state_ == kReject) {
        return 0;
    }
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const size_t n = bytes.size();
    uint8_t s = state_;
    size_t i = 0;
    while (i < n) {
        if (s == kAccept) {
            // Between sequences, skip ASCII a word at a time: text is mostly ASCII.
            while (n - i >= 8) {
                uint64_t word = 0;
                std::memcpy(&word, p + i, sizeof(word));
                if ((word & kHighBits) != 0) {
                    break;
                }
                i += 8;
            }
            if (i == n) {
                break;
            }
        }
        s = kTransitions[size_t{s} * kClassCount + kClasses[p[i]]];
        if (s == kReject) {
            state_ = kReject;
            return i;
        }
        ++i;
    }
    state_ = s;
    return n;
}

bool is_valid_utf8(std::span<const std::byte> bytes) noexcept {
    Utf8Validator v;
    return v.feed(bytes) == bytes.size() && v.is_complete();
}

}  // namespace ferry::proto::ws
