#include "report.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ferry::bench {

std::string_view run_mode_name(RunMode mode) {
    switch (mode) {
        case RunMode::Rr:
            return "rr";
        case RunMode::Bulk:
            return "bulk";
        case RunMode::Verify:
            return "verify";
        case RunMode::WsRr:
            return "ws-rr";
        case RunMode::WsVerify:
            return "ws-verify";
    }
    return "?";
}

std::string json_escape(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (static_cast<unsigned char>(c) < 0x20) {
            absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned>(c));
        } else {
            out.push_back(c);
        }
    }
    return out;
}

void print_run_report(const RunReport& r, bool json) {
    const double secs = r.duration_s > 0 ? r.duration_s : 1e-9;
    const double msgs_per_s = static_cast<double>(r.messages) / secs;
    const double mb_per_s = static_cast<double>(r.bytes) / secs / 1e6;
    const double gbit_per_s = static_cast<double>(r.bytes) * 8 / secs / 1e9;
    const auto us = [&](double p) { return static_cast<double>(r.latency_ns.percentile(p)) / 1e3; };
    const double max_us = static_cast<double>(r.latency_ns.max()) / 1e3;
    const double mean_us = r.latency_ns.mean() / 1e3;
    const double proxy_cpu_s = r.after.proxy_cpu_s - r.before.proxy_cpu_s;
    const double load_cpu_s = r.after.self_cpu_s - r.before.self_cpu_s;
    const double cpu_us_per_msg =
        r.messages == 0 ? 0 : proxy_cpu_s * 1e6 / static_cast<double>(r.messages);
    const double cpu_s_per_gb =
        r.bytes == 0 ? 0 : proxy_cpu_s / (static_cast<double>(r.bytes) / 1e9);
    const std::vector<double> busy = core_busy(r.before, r.after);

    if (json) {
        std::string out = absl::StrFormat(
            "{\"label\":\"%s\",\"mode\":\"%s\",\"connections\":%d,\"size\":%d,"
            "\"duration_s\":%.3f,\"messages\":%d,\"bytes\":%d,\"msgs_per_s\":%.1f,"
            "\"mb_per_s\":%.2f,\"gbit_per_s\":%.3f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
            "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,\"errors\":%d,"
            "\"load_cpu_s\":%.2f,\"cpu_busy\":[%s]",
            json_escape(r.label), r.mode, r.connections, r.size, r.duration_s, r.messages, r.bytes,
            msgs_per_s, mb_per_s, gbit_per_s, us(50), us(90), us(99), us(99.9), max_us, mean_us,
            r.errors, load_cpu_s, absl::StrJoin(busy, ",", [](std::string* o, double b) {
                absl::StrAppendFormat(o, "%.3f", b);
            }));
        if (r.watched_proxies) {
            absl::StrAppendFormat(&out,
                                  ",\"proxy_cpu_s\":%.2f,\"cpu_us_per_msg\":%.3f,"
                                  "\"cpu_s_per_gb\":%.3f,\"proxy_rss_kib\":%d",
                                  proxy_cpu_s, cpu_us_per_msg, cpu_s_per_gb, r.after.proxy_rss_kib);
        }
        out += "}\n";
        fputs(out.c_str(), stdout);
        fflush(stdout);
        return;
    }

    std::string out = absl::StrFormat(
        "%s %s: %d connections, size %d B, %.2f s measured, %d errors\n", r.mode,
        r.label.empty() ? "run" : r.label, r.connections, r.size, r.duration_s, r.errors);
    absl::StrAppendFormat(&out, "  %-12s %14s %12s %10s\n", "", "messages", "msgs/s", "MB/s");
    absl::StrAppendFormat(&out, "  %-12s %14d %12.0f %10.1f   (%.2f Gbit/s)\n", "throughput",
                          r.messages, msgs_per_s, mb_per_s, gbit_per_s);
    if (r.latency_ns.count() > 0) {
        absl::StrAppendFormat(&out, "  %-12s %9s %9s %9s %9s %9s %9s\n", "latency us", "p50", "p90",
                              "p99", "p99.9", "max", "mean");
        absl::StrAppendFormat(&out, "  %-12s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", "", us(50),
                              us(90), us(99), us(99.9), max_us, mean_us);
    }
    if (r.watched_proxies) {
        absl::StrAppendFormat(&out,
                              "  proxy cpu    %.2f s (%.2f cores), %.2f us/msg, %.3f s/GB, rss %d "
                              "KiB\n",
                              proxy_cpu_s, proxy_cpu_s / secs, cpu_us_per_msg, cpu_s_per_gb,
                              r.after.proxy_rss_kib);
    }
    absl::StrAppendFormat(&out, "  load cpu     %.2f s; core busy %s\n", load_cpu_s,
                          absl::StrJoin(busy, " ", [](std::string* o, double b) {
                              absl::StrAppendFormat(o, "%.0f%%", b * 100);
                          }));
    fputs(out.c_str(), stdout);
    fflush(stdout);
}

}  // namespace ferry::bench
