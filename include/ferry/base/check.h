// Invariant macros (envoy's model): CHECK always on, DCHECK debug only, BUG logs once.
// Never use these on peer input: peer input produces a protocol error, not an abort.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace ferry::base {

[[noreturn]] void check_failed(const char* file, int line, const char* expr) noexcept;
// Logs the first occurrence of a "cannot happen" path per call site and counts it; aborts in debug.
void bug_reported(const char* file, int line, const char* what) noexcept;

}  // namespace ferry::base

#define FERRY_CHECK(cond)                                           \
    do {                                                            \
        if (__builtin_expect(!(cond), 0)) [[unlikely]] {            \
            ::ferry::base::check_failed(__FILE__, __LINE__, #cond); \
        }                                                           \
    } while (0)

#ifdef NDEBUG
#define FERRY_DCHECK(cond)  \
    do {                    \
        (void)sizeof(cond); \
    } while (0)
#else
#define FERRY_DCHECK(cond) FERRY_CHECK(cond)
#endif

#define FERRY_BUG(what) ::ferry::base::bug_reported(__FILE__, __LINE__, what)
