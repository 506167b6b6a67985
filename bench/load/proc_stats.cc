#include "proc_stats.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::bench {
namespace {

double ticks_per_second() {
    static const double kTicks = static_cast<double>(sysconf(_SC_CLK_TCK));
    return kTicks;
}

// utime + stime in ticks from /proc/<pid>/stat; false when the process is gone. Fields are
// counted after the ")" closing comm, since comm may contain spaces.
bool read_cpu_ticks(const std::string& stat_path, uint64_t* ticks) {
    std::ifstream in(stat_path);
    std::string line;
    if (!std::getline(in, line)) {
        return false;
    }
    const size_t close = line.rfind(')');
    if (close == std::string::npos) {
        return false;
    }
    std::vector<std::string> fields =
        absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
    // After comm: state(3) ppid(4) ... utime(14) stime(15); index = field - 3.
    uint64_t utime = 0;
    uint64_t stime = 0;
    if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
        !absl::SimpleAtoi(fields[12], &stime)) {
        return false;
    }
    *ticks = utime + stime;
    return true;
}

uint64_t read_rss_kib(int pid) {
    std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            std::istringstream fields(line.substr(6));
            uint64_t kib = 0;
            fields >> kib;
            return kib;
        }
    }
    return 0;
}

void read_cores(ProcSample* out) {
    std::ifstream in("/proc/stat");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("cpu", 0) != 0 || line.size() < 4 || line[3] == ' ') {
            continue;  // the aggregate "cpu " line and non-cpu lines
        }
        std::istringstream fields(line);
        std::string name;
        fields >> name;
        uint64_t total = 0;
        uint64_t idle = 0;
        uint64_t value = 0;
        for (int i = 0; i < 8 && (fields >> value); ++i) {
            total += value;
            if (i == 3 || i == 4) {  // idle, iowait
                idle += value;
            }
        }
        out->cpu_total.push_back(total);
        out->cpu_busy.push_back(total - idle);
    }
}

}  // namespace

ProcSample sample_proc(const std::vector<int>& pids) {
    ProcSample sample;
    uint64_t ticks = 0;
    for (int pid : pids) {
        uint64_t t = 0;
        if (read_cpu_ticks(absl::StrCat("/proc/", pid, "/stat"), &t)) {
            ticks += t;
            sample.proxy_rss_kib += read_rss_kib(pid);
        } else {
            ++sample.missing_pids;
        }
    }
    sample.proxy_cpu_s = static_cast<double>(ticks) / ticks_per_second();
    uint64_t self = 0;
    if (read_cpu_ticks("/proc/self/stat", &self)) {
        sample.self_cpu_s = static_cast<double>(self) / ticks_per_second();
    }
    read_cores(&sample);
    return sample;
}

std::vector<double> core_busy(const ProcSample& before, const ProcSample& after) {
    std::vector<double> busy;
    for (size_t i = 0; i < before.cpu_total.size() && i < after.cpu_total.size(); ++i) {
        const uint64_t total = after.cpu_total[i] - before.cpu_total[i];
        const uint64_t used = after.cpu_busy[i] - before.cpu_busy[i];
        busy.push_back(total == 0 ? 0.0 : static_cast<double>(used) / static_cast<double>(total));
    }
    return busy;
}

}  // namespace ferry::bench
