#include "ferry/proto/ws/utf8_validator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ferry::proto::ws {
namespace {

// The index of the first byte at which `s` stops being a prefix of well-formed UTF-8, or nullopt;
// decoded the slow, obvious way (Unicode Table 3-7 via code point ranges) as the reference.
std::optional<size_t> reference_first_error(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        size_t len = 0;
        uint32_t cp = 0;
        uint32_t min = 0;
        if (b0 < 0x80) {
            ++i;
            continue;
        }
        if ((b0 & 0xE0) == 0xC0) {
            len = 2;
            cp = b0 & 0x1F;
            min = 0x80;
        } else if ((b0 & 0xF0) == 0xE0) {
            len = 3;
            cp = b0 & 0x0F;
            min = 0x800;
        } else if ((b0 & 0xF8) == 0xF0) {
            len = 4;
            cp = b0 & 0x07;
            min = 0x10000;
        } else {
            return i;
        }
        // After each byte, the value so far extended by the smallest and by the largest
        // remaining bits must still be able to land in range: the first byte for which it
        // cannot is where the sequence fails (a C0 lead is overlong whatever follows).
        for (size_t k = 0; k < len; ++k) {
            if (k > 0) {
                if (i + k == s.size()) {
                    return std::nullopt;  // a valid prefix so far
                }
                const auto b = static_cast<unsigned char>(s[i + k]);
                if ((b & 0xC0) != 0x80) {
                    return i + k;
                }
                cp = (cp << 6) | (b & 0x3F);
            }
            const size_t left = len - 1 - k;
            const uint32_t lo = cp << (6 * left);
            const uint32_t hi = lo | ((1U << (6 * left)) - 1);
            if (hi < min || lo > 0x10FFFF || (lo >= 0xD800 && hi <= 0xDFFF)) {
                return i + k;
            }
        }
        i += len;
    }
    return std::nullopt;
}

bool reference_complete(std::string_view s) {
    if (reference_first_error(s).has_value()) {
        return false;
    }
    // Complete when no sequence is left open at the end.
    size_t i = 0;
    while (i < s.size()) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        const size_t len = b0 < 0x80 ? 1 : (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : 4;
        if (i + len > s.size()) {
            return false;
        }
        i += len;
    }
    return true;
}

std::string encode(uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

// Feeds `s` in two pieces cut at `cut` and returns the absolute index of the first rejected
// byte, or nullopt with `complete` set.
std::optional<size_t> validate_split(std::string_view s, size_t cut, bool* complete) {
    Utf8Validator v;
    const size_t a = v.feed(s.substr(0, cut));
    if (a < cut) {
        return a;
    }
    const size_t b = v.feed(s.substr(cut));
    if (b < s.size() - cut) {
        return cut + b;
    }
    *complete = v.is_complete();
    return std::nullopt;
}

const std::string kKosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

TEST(WsUtf8Validator, AcceptsWellFormedText) {
    // Autobahn 6.2-6.5 and 6.22-6.23: multilingual text, the boundaries of each length class,
    // the last code points before and after the surrogates, noncharacters (valid UTF-8).
    for (const std::string& s : std::vector<std::string>{
             "", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", kKosme,
             std::string(1, '\0'), "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf",
             "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd",
             "\xef\xbf\xbe", "\xf0\x9f\xbf\xbf", "\xf3\xbf\xbf\xbf"}) {
        EXPECT_TRUE(is_valid_utf8(s)) << s;
        for (size_t cut = 0; cut <= s.size(); ++cut) {
            bool complete = false;
            EXPECT_EQ(validate_split(s, cut, &complete), std::nullopt) << cut;
            EXPECT_TRUE(complete);
        }
    }
}

TEST(WsUtf8Validator, RejectsEachInvalidFormAtItsFirstTellingByte) {
    struct Case {
        std::string text;
        size_t at;
    };
    // Autobahn 6.3-6.21 (Markus Kuhn's stress test): lone continuation bytes, impossible bytes,
    // overlong forms (the slash, and the largest overlong of each length), surrogates alone and
    // paired, code points above U+10FFFF, a lead cut short by the next character.
    for (const Case& c : std::vector<Case>{
             {"\x80", 0},
             {"\xbf", 0},
             {"a\x80\xbf", 1},
             {"\xc0\xaf", 0},
             {"\xc1\xbf", 0},
             {"\xe0\x80\xaf", 1},
             {"\xe0\x9f\xbf", 1},
             {"\xf0\x80\x80\xaf", 1},
             {"\xf0\x8f\xbf\xbf", 1},
             {"\xf8\x80\x80\x80\xaf", 0},
             {"\xfc\x80\x80\x80\x80\xaf", 0},
             {"\xfe", 0},
             {"\xff", 0},
             {"\xed\xa0\x80", 1},
             {"\xed\xad\xbf", 1},
             {"\xed\xbf\xbf", 1},
             {"\xed\xa0\x80\xed\xb0\x80", 1},
             {"\xf4\x90\x80\x80", 1},
             {"\xf5\x80\x80\x80", 0},
             {"\xf7\xbf\xbf\xbf", 0},
             {"\xc2 ", 1},
             {"\xe1\x80 ", 2},
             {"\xf1\x80\x80 ", 3},
             {kKosme + "\xed\xa0\x80" + "edited", 12},
         }) {
        EXPECT_FALSE(is_valid_utf8(c.text));
        EXPECT_EQ(reference_first_error(c.text), c.at);
        for (size_t cut = 0; cut <= c.text.size(); ++cut) {
            bool complete = false;
            EXPECT_EQ(validate_split(c.text, cut, &complete), c.at) << "cut " << cut;
        }
    }
}

TEST(WsUtf8Validator, ReportsAnOpenSequenceAsIncomplete) {
    for (const std::string& s : std::vector<std::string>{"\xc2", "\xe0\xa0", "\xf0\x90\x80",
                                                         "abc\xf4", kKosme.substr(0, 10)}) {
        Utf8Validator v;
        EXPECT_EQ(v.feed(s), s.size());
        EXPECT_FALSE(v.is_complete());
        EXPECT_FALSE(v.failed());
        EXPECT_FALSE(is_valid_utf8(s));
    }
}

TEST(WsUtf8Validator, StaysFailedUntilReset) {
    Utf8Validator v;
    EXPECT_EQ(v.feed("ok\xff"), 2U);
    EXPECT_TRUE(v.failed());
    EXPECT_EQ(v.feed("fine"), 0U);
    EXPECT_FALSE(v.is_complete());
    v.reset();
    EXPECT_EQ(v.feed("fine"), 4U);
    EXPECT_TRUE(v.is_complete());
}

TEST(WsUtf8Validator, FindsTheBadByteAtEveryOffsetOfTheAsciiFastPath) {
    // The word-at-a-time path must hand over to the DFA wherever the bad byte falls.
    for (size_t len = 0; len < 40; ++len) {
        for (size_t at = 0; at <= len; ++at) {
            std::string s(len + 1, 'a');
            s[at] = '\x80';
            Utf8Validator v;
            EXPECT_EQ(v.feed(s), at) << len << " " << at;
            std::string good(len + 1, 'a');
            good.replace(at, 1, "\xe2\x82\xac");  // a 3-byte character anywhere
            EXPECT_TRUE(is_valid_utf8(good)) << len << " " << at;
        }
    }
}

TEST(WsUtf8Validator, AcceptsEveryScalarValueAndNoSurrogate) {
    for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        const std::string s = encode(cp);
        const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        ASSERT_EQ(is_valid_utf8(s), !surrogate) << std::hex << cp;
    }
    EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // U+110000
}

void expect_agrees_with_reference(const std::string& s) {
    Utf8Validator v;
    const size_t accepted = v.feed(s);
    ASSERT_EQ(accepted, reference_first_error(s).value_or(s.size())) << testing::PrintToString(s);
    ASSERT_EQ(v.is_complete(), reference_complete(s)) << testing::PrintToString(s);
}

TEST(WsUtf8Validator, AgreesWithTheReferenceOnEveryShortSequence) {
    // Every 1- and 2-byte string, and each of them followed by bytes from every class (and then
    // a continuation byte), against the reference decoder: same failing index, same completeness.
    const unsigned classes[] = {0x41, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc2, 0xe0, 0xf4};
    for (unsigned b0 = 0; b0 < 256; ++b0) {
        expect_agrees_with_reference(std::string(1, static_cast<char>(b0)));
        for (unsigned b1 = 0; b1 < 256; ++b1) {
            std::string s = {static_cast<char>(b0), static_cast<char>(b1)};
            expect_agrees_with_reference(s);
            for (unsigned b2 : classes) {
                s.resize(2);
                s += static_cast<char>(b2);
                expect_agrees_with_reference(s);
                s += '\x80';
                expect_agrees_with_reference(s);
            }
            if (HasFatalFailure()) {
                return;  // one mismatch says enough
            }
        }
    }
}

}  // namespace
}  // namespace ferry::proto::ws
