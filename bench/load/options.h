// What each ferry-load subcommand is asked to do; main.cc fills these from flags.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ferry::bench {

enum class ServeMode { Echo, Sink, Source, WsEcho, GrpcEcho };
// WsRr / WsVerify: rr over WebSocket (one masked message per request, echoed whole); WsVerify
// also compares the echoed bytes.
enum class RunMode { Rr, Bulk, Verify, WsRr, WsVerify };

struct ServeOptions {
    sockaddr_in listen{};
    ServeMode mode = ServeMode::Echo;
    int threads = 1;
};

struct RunOptions {
    sockaddr_in target{};
    RunMode mode = RunMode::Rr;
    uint32_t connections = 64;
    uint64_t size = 1024;
    absl::Duration duration = absl::Seconds(10);
    absl::Duration warmup = absl::Seconds(1);
    uint64_t count = 0;  // 0: run for `duration`
    int threads = 1;
    bool json = false;
    std::string label;
    double connect_rate = 0;  // connections per second, 0: unpaced
    std::vector<int> proxy_pids;
    // verify only
    uint64_t bytes_per_connection = 4 << 20;
    uint64_t seed = 1;
    bool half_close = true;
    absl::Duration timeout = absl::Seconds(120);
    // ws-rr / ws-verify only
    std::string path = "/";
    std::string subprotocol;
    bool text = false;

    [[nodiscard]] bool websocket() const noexcept {
        return mode == RunMode::WsRr || mode == RunMode::WsVerify;
    }
};

struct IdleOptions {
    sockaddr_in target{};
    uint32_t connections = 10000;
    absl::Duration hold = absl::Seconds(10);
    uint64_t send_first = 0;
    // --mode ws: each connection upgrades to WebSocket (--path), sends one text message and
    // counts as live only once a reply message came back; then it idles like the others.
    bool ws = false;
    std::string path = "/";
    bool json = false;
    std::string label;
    double connect_rate = 0;
    std::vector<int> proxy_pids;
};

}  // namespace ferry::bench
