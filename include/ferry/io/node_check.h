// What the node offers ferry, read once at start and reported in the log and in /metrics: whether
// io_uring is allowed (kernel.io_uring_disabled, Linux 6.6+; older kernels have no switch and
// allow it) and whether the kernel's `tls` module is there for kTLS. A DaemonSet lands on nodes
// an operator did not prepare; these two facts explain "io_uring setup failed: EPERM" and
// "kTLS unavailable" before anyone reads a stack trace.
#pragma once

#include <string>
#include <string_view>

namespace ferry::io {

enum class TlsModule { Loaded, Available, Absent };

struct NodeCheck {
    int io_uring_disabled = -1;  // 0 allowed, 1 root/group only, 2 off; -1 no such sysctl
    TlsModule tls_module = TlsModule::Absent;
};

// Reads the sysctl and the module state under `proc` and `sys` (the real /proc and /sys unless a
// test points elsewhere); `release` is uname's, for /lib/modules/<release>.
[[nodiscard]] NodeCheck check_node(std::string_view proc = "/proc", std::string_view sys = "/sys",
                                   std::string_view modules = "/lib/modules",
                                   std::string_view release = {});

[[nodiscard]] const char* tls_module_name(TlsModule m) noexcept;
// One line for the start-up log: the facts and what they mean for this process.
[[nodiscard]] std::string describe(const NodeCheck& check, bool ktls_usable);

}  // namespace ferry::io
