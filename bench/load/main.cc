// ferry-load: the load generator and test peer of ferry's benchmark harness (bench/run.sh).
//   serve  an echo / sink / source TCP server (the upstream)
//   run    rr (request/response latency), bulk (throughput) or verify (end-to-end correctness)
//   idle   many idle connections, to measure a proxy's memory per connection
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ferry/base/byte_size.h"
#include "idle.h"
#include "load.h"
#include "net.h"
#include "options.h"
#include "server.h"
#include "verify.h"

using ferry::base::ByteSize;

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "serve: address to listen on (port 0: any free)");
ABSL_FLAG(std::string, target, "", "run/idle: address to connect to");
ABSL_FLAG(std::string, mode, "",
          "serve: echo|sink|source|ws-echo|grpc-echo (default echo); "
          "run: rr|bulk|verify|ws-rr|ws-verify (default rr)");
ABSL_FLAG(int, threads, 1, "worker threads, each with its own io_uring");
ABSL_FLAG(uint32_t, connections, 64, "run/idle: number of concurrent connections");
ABSL_FLAG(ByteSize, size, ByteSize{1024},
          "rr: request (= response) size; bulk: read size (use >= 64k)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "run: measured interval (after warmup)");
ABSL_FLAG(uint64_t, count, 0, "run: stop after this many measured messages instead of --duration");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "run: traffic before the measured interval");
ABSL_FLAG(bool, json, false, "print one JSON object instead of the table");
ABSL_FLAG(std::string, label, "", "name of this run in the output");
ABSL_FLAG(double, connect_rate, 0, "connections opened per second (0: all at once)");
ABSL_FLAG(std::vector<std::string>, proxy_pids, {},
          "pids of the processes under test: their CPU time (run) or memory (idle) is reported");
ABSL_FLAG(ByteSize, bytes_per_connection, ByteSize{4 << 20}, "verify: bytes sent per connection");
ABSL_FLAG(uint64_t, seed, 1, "verify: seed of the pseudo-random streams and write sizes");
ABSL_FLAG(bool, half_close, true,
          "verify: shut down the write side and expect the echo to end with EOF (false: close)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(120),
          "verify: give up (exit 1) after this long; run --count: bound on the interval");
ABSL_FLAG(absl::Duration, hold, absl::Seconds(10), "idle: how long to hold the connections");
ABSL_FLAG(ByteSize, send_first, ByteSize{0}, "idle: bytes each connection sends before idling");
ABSL_FLAG(std::string, path, "/", "ws-rr/ws-verify: request target of the WebSocket upgrade");
ABSL_FLAG(std::string, subprotocol, "", "ws-rr/ws-verify: subprotocol to offer (and require)");
ABSL_FLAG(bool, text, false, "ws-rr/ws-verify: send Text messages (ASCII) instead of Binary");

namespace ferry::bench {

namespace {

constexpr char kUsage[] = R"(load generator and test peer for ferry benchmarks

  ferry-load serve --listen 127.0.0.1:PORT --mode echo|sink|source|ws-echo|grpc-echo [--threads N]
  ferry-load run --target 127.0.0.1:PORT --mode rr|bulk|verify|ws-rr|ws-verify [--connections 64]
                 [--size 1024] [--duration 10s | --count N] [--warmup 1s] [--threads 1] [--json]
                 [--label NAME] [--proxy-pids PID,PID] [--connect-rate N]
                 verify: [--bytes-per-connection 4MiB] [--seed 1] [--half-close=false] [--timeout 120s]
                 ws-rr, ws-verify: [--path /] [--subprotocol NAME] [--text]
  ferry-load idle --target 127.0.0.1:PORT --connections 10000 --hold 10s [--send-first N]
                  [--mode ws [--path /]]  (WebSocket: each connection verified live by a message)
                  [--proxy-pids PID,PID] [--json])";

int fail_usage(const std::string& why) {
    fprintf(stderr, "ferry-load: %s\n\nusage: %s\n", why.c_str(), kUsage);
    return 2;
}

bool parse_pids(std::vector<int>* out) {
    for (const std::string& text : absl::GetFlag(FLAGS_proxy_pids)) {
        int pid = 0;
        if (!absl::SimpleAtoi(text, &pid) || pid <= 0) {
            return false;
        }
        out->push_back(pid);
    }
    return true;
}

int serve_main() {
    ServeOptions options;
    absl::StatusOr<sockaddr_in> listen = parse_endpoint(absl::GetFlag(FLAGS_listen));
    if (!listen.ok()) {
        return fail_usage(std::string(listen.status().message()));
    }
    options.listen = *listen;
    const std::string mode = absl::GetFlag(FLAGS_mode);
    if (mode.empty() || mode == "echo") {
        options.mode = ServeMode::Echo;
    } else if (mode == "sink") {
        options.mode = ServeMode::Sink;
    } else if (mode == "source") {
        options.mode = ServeMode::Source;
    } else if (mode == "ws-echo") {
        options.mode = ServeMode::WsEcho;
    } else if (mode == "grpc-echo") {
        options.mode = ServeMode::GrpcEcho;
    } else {
        return fail_usage(absl::StrFormat("serve: unknown --mode %s", mode));
    }
    options.threads = absl::GetFlag(FLAGS_threads);
    if (options.threads < 1 || options.threads > 256) {
        return fail_usage("--threads must be in [1, 256]");
    }
    // Blocked before any thread starts, so only the main thread's sigwait() sees them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    return run_serve(options);
}

int run_main() {
    RunOptions options;
    absl::StatusOr<sockaddr_in> target = parse_endpoint(absl::GetFlag(FLAGS_target));
    if (!target.ok()) {
        return fail_usage(absl::StrCat("--target: ", target.status().message()));
    }
    options.target = *target;
    const std::string mode = absl::GetFlag(FLAGS_mode);
    if (mode.empty() || mode == "rr") {
        options.mode = RunMode::Rr;
    } else if (mode == "bulk") {
        options.mode = RunMode::Bulk;
    } else if (mode == "verify") {
        options.mode = RunMode::Verify;
    } else if (mode == "ws-rr") {
        options.mode = RunMode::WsRr;
    } else if (mode == "ws-verify") {
        options.mode = RunMode::WsVerify;
    } else {
        return fail_usage(absl::StrFormat("run: unknown --mode %s", mode));
    }
    options.connections = absl::GetFlag(FLAGS_connections);
    options.size = absl::GetFlag(FLAGS_size).bytes;
    options.duration = absl::GetFlag(FLAGS_duration);
    options.warmup = absl::GetFlag(FLAGS_warmup);
    options.count = absl::GetFlag(FLAGS_count);
    options.threads = absl::GetFlag(FLAGS_threads);
    options.json = absl::GetFlag(FLAGS_json);
    options.label = absl::GetFlag(FLAGS_label);
    options.connect_rate = absl::GetFlag(FLAGS_connect_rate);
    options.bytes_per_connection = absl::GetFlag(FLAGS_bytes_per_connection).bytes;
    options.seed = absl::GetFlag(FLAGS_seed);
    options.half_close = absl::GetFlag(FLAGS_half_close);
    options.timeout = absl::GetFlag(FLAGS_timeout);
    options.path = absl::GetFlag(FLAGS_path);
    options.subprotocol = absl::GetFlag(FLAGS_subprotocol);
    options.text = absl::GetFlag(FLAGS_text);
    if (!options.path.starts_with('/')) {
        return fail_usage("--path must start with '/'");
    }
    if (options.connections == 0 || options.connections > 1'000'000) {
        return fail_usage("--connections must be in [1, 1000000]");
    }
    if (options.size == 0 || options.size > (64 << 20)) {
        return fail_usage("--size must be in [1, 64MiB]");
    }
    if (options.threads < 1 || options.threads > 256) {
        return fail_usage("--threads must be in [1, 256]");
    }
    if (options.duration <= absl::ZeroDuration() || options.warmup < absl::ZeroDuration() ||
        options.timeout <= absl::ZeroDuration()) {
        return fail_usage("--duration and --timeout must be positive, --warmup not negative");
    }
    if (!parse_pids(&options.proxy_pids)) {
        return fail_usage("--proxy-pids takes a comma-separated list of pids");
    }
    signal(SIGPIPE, SIG_IGN);
    return options.mode == RunMode::Verify ? run_verify(options) : run_load(options);
}

int idle_main() {
    IdleOptions options;
    absl::StatusOr<sockaddr_in> target = parse_endpoint(absl::GetFlag(FLAGS_target));
    if (!target.ok()) {
        return fail_usage(absl::StrCat("--target: ", target.status().message()));
    }
    options.target = *target;
    options.connections = absl::GetFlag(FLAGS_connections);
    options.hold = absl::GetFlag(FLAGS_hold);
    options.send_first = absl::GetFlag(FLAGS_send_first).bytes;
    const std::string mode = absl::GetFlag(FLAGS_mode);
    if (mode == "ws") {
        options.ws = true;
        options.path = absl::GetFlag(FLAGS_path);
    } else if (!mode.empty() && mode != "tcp") {
        return fail_usage("idle --mode must be tcp (default) or ws");
    }
    options.json = absl::GetFlag(FLAGS_json);
    options.label = absl::GetFlag(FLAGS_label);
    options.connect_rate = absl::GetFlag(FLAGS_connect_rate);
    if (options.connections == 0 || options.connections > 1'000'000) {
        return fail_usage("--connections must be in [1, 1000000]");
    }
    if (!parse_pids(&options.proxy_pids)) {
        return fail_usage("--proxy-pids takes a comma-separated list of pids");
    }
    signal(SIGPIPE, SIG_IGN);
    return run_idle(options);
}

// Abseil spells flags with underscores; accept --half-close as well as --half_close by
// rewriting the name part (before any '=') of every "--name" argument.
void normalize_flag_names(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        char* arg = argv[i];
        if (arg[0] != '-' || arg[1] != '-') {
            continue;
        }
        for (char* c = arg + 2; *c != '\0' && *c != '='; ++c) {
            if (*c == '-') {
                *c = '_';
            }
        }
    }
}

}  // namespace
}  // namespace ferry::bench

int main(int argc, char** argv) {
    absl::SetProgramUsageMessage(ferry::bench::kUsage);
    ferry::bench::normalize_flag_names(argc, argv);
    std::vector<char*> args = absl::ParseCommandLine(argc, argv);
    if (args.size() != 2) {
        return ferry::bench::fail_usage("expected exactly one subcommand: serve, run or idle");
    }
    const std::string command = args[1];
    if (command == "serve") {
        return ferry::bench::serve_main();
    }
    if (command == "run") {
        return ferry::bench::run_main();
    }
    if (command == "idle") {
        return ferry::bench::idle_main();
    }
    return ferry::bench::fail_usage(absl::StrFormat("unknown subcommand '%s'", command));
}
