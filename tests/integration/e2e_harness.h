// The harness of the end-to-end tests: real ferry initiator and terminator processes on loopback,
// with ferry-load
// (and in-test socket peers) as clients and upstreams. Every process is killed by PID when its
// Process object goes away, so a failing test leaves nothing running.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "process.h"

namespace ferry::e2e {

using testlib::Process;
using testlib::ReadEnd;
using testlib::ReadResult;

inline std::string bin(const char* env, const char* fallback) {
    const char* v = std::getenv(env);
    return v != nullptr ? v : fallback;
}
inline std::string ferry_bin() { return bin("FERRY_BIN", "build/src/cli/ferry"); }
inline std::string load_bin() { return bin("FERRY_LOAD_BIN", "build/bench/load/ferry-load"); }
inline std::string addr(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// A blocking listener for in-test upstream peers.
inline int listen_on(uint16_t* port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd, 128);
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    *port = ntohs(a.sin_port);
    return fd;
}

// Accepts with a timeout so a test thread never blocks forever.
inline int accept_within(int lfd, int timeout_ms) {
    pollfd p{lfd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) {
        return -1;
    }
    return accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
}

// Mutual TLS flags for one side, from a PKI made by tools/gen-certs.sh.
inline std::vector<std::string> tls_flags(const std::string& pki, const std::string& cert) {
    return {"--tunnel-transport", "tls",
            "--tls-cert",         pki + "/" + cert + ".crt",
            "--tls-key",          pki + "/" + cert + ".key",
            "--tls-ca",           pki + "/ca.crt"};
}

inline std::string make_pki(const std::string& dir) {
    std::string pki = dir + "/pki";
    const char* src = std::getenv("FERRY_SOURCE_DIR");
    std::string script = std::string(src != nullptr ? src : ".") + "/tools/gen-certs.sh";
    Process gen({"/bin/bash", script, pki}, dir + "/gen-certs.log");
    EXPECT_EQ(gen.wait(60000).value_or(-1), 0) << gen.log();
    return pki;
}

// True when a TCP connect to `port` on loopback fails (nothing listens there any more).
inline bool refuses_connections(uint16_t port) {
    int fd = testlib::connect_to(port);
    if (fd >= 0) {
        close(fd);
    }
    return fd < 0;
}

// True once something accepts connections on 127.0.0.1:`port` (bounded by `timeout_ms`).
inline bool wait_listening(uint16_t port, int timeout_ms) {
    return testlib::wait_until(
        [&] {
            int fd = testlib::connect_to(port);
            if (fd >= 0) {
                close(fd);
            }
            return fd >= 0;
        },
        timeout_ms);
}

// POST `body` to the admin port's `path`; the whole raw reply ("" when nothing answers).
inline std::string admin_post(uint16_t port, const std::string& path, const std::string& body) {
    int fd = testlib::connect_to(port);
    if (fd < 0) {
        return {};
    }
    std::string request = "POST ";
    request += path;
    request += " HTTP/1.1\r\nHost: x\r\nContent-Length: ";
    request += std::to_string(body.size());
    request += "\r\n\r\n";
    request += body;
    (void)testlib::write_all(fd, request.data(), request.size());
    ReadResult r = testlib::read_all(fd, 20000);
    close(fd);
    return r.bytes;
}

class Tunnel {
  public:
    // Starts a terminator forwarding to `upstream_port` and an initiator in front of it. The
    // tunnel is plain TCP unless `pki` is given (then mutual TLS with the demo certificates).
    // With `ws_path` the initiator listens for WebSocket clients (ws://127.0.0.1:PORT<ws_path>)
    // instead of TCP ones ("wss:/PATH": wss://; "grpc:": gRPC clients on grpc://). With
    // `upstream_ws_path` the terminator's upstream is the WebSocket server
    // ws://127.0.0.1:upstream_port<upstream_ws_path> instead of a TCP one.
    Tunnel(const std::string& dir, uint16_t upstream_port, int shards = 2,
           std::vector<std::string> extra = {}, std::string pki = {}, int terminator_shards = 0,
           std::vector<std::string> terminator_extra = {}, std::string ws_path = {},
           std::string upstream_ws_path = {})
        : dir_(dir),
          upstream_port_(upstream_port),
          tunnel_port_(testlib::free_port()),
          listen_port_(testlib::free_port()),
          admin_i_(testlib::free_port()),
          admin_t_(testlib::free_port()),
          shards_(shards),
          extra_(std::move(extra)),
          pki_(std::move(pki)),
          terminator_shards_(terminator_shards == 0 ? shards : terminator_shards),
          terminator_extra_(std::move(terminator_extra)),
          ws_path_(std::move(ws_path)),
          upstream_ws_path_(std::move(upstream_ws_path)) {
        start_terminator();
        start_initiator();
    }

    void start_terminator() {
        std::vector<std::string> args = {ferry_bin(),
                                         "terminator",
                                         "--listen-tunnel",
                                         addr(tunnel_port_),
                                         "--upstream",
                                         upstream_ws_path_.empty()
                                             ? addr(upstream_port_)
                                             : "ws://" + addr(upstream_port_) + upstream_ws_path_,
                                         "--admin",
                                         addr(admin_t_),
                                         "--shards",
                                         std::to_string(terminator_shards_),
                                         "--cpus",
                                         "none",
                                         "--node-name",
                                         "cluster-b-0",
                                         "--connect-timeout",
                                         "2s"};
        add_transport(args, "terminator");
        args.insert(args.end(), extra_.begin(), extra_.end());
        args.insert(args.end(), terminator_extra_.begin(), terminator_extra_.end());
        terminator = std::make_unique<Process>(args, dir_ + "/terminator.log");
    }
    void start_initiator() {
        // "wss:/PATH" asks for a wss:// listener (its certificate comes in `extra`), "grpc:" for
        // a grpc:// one.
        const bool wss = ws_path_.rfind("wss:", 0) == 0;
        const std::string listen = ws_path_.empty()      ? addr(listen_port_)
                                   : ws_path_ == "grpc:" ? "grpc://" + addr(listen_port_)
                                   : wss ? "wss://" + addr(listen_port_) + ws_path_.substr(4)
                                         : "ws://" + addr(listen_port_) + ws_path_;
        std::vector<std::string> args = {ferry_bin(),       "initiator",
                                         "--listen",        listen,
                                         "--peer",          addr(tunnel_port_),
                                         "--admin",         addr(admin_i_),
                                         "--shards",        std::to_string(shards_),
                                         "--cpus",          "none",
                                         "--node-name",     "cluster-a-0",
                                         "--drain-timeout", "10s"};
        // No auto-trigger unless a test asks (its streams would count in every test's figures);
        // a later --auto-trigger in `extra_` wins.
        args.insert(args.end(), {"--auto-trigger", "0"});
        add_transport(args, "initiator");
        args.insert(args.end(), extra_.begin(), extra_.end());
        initiator = std::make_unique<Process>(args, dir_ + "/initiator.log");
    }
    void add_transport(std::vector<std::string>& args, const std::string& cert) const {
        if (pki_.empty()) {
            args.insert(args.end(), {"--tunnel-transport", "plain"});
        } else {
            std::vector<std::string> t = tls_flags(pki_, cert);
            args.insert(args.end(), t.begin(), t.end());
        }
    }
    [[nodiscard]] bool ready(int timeout_ms = 20000) const {
        return testlib::wait_until(
            [&] { return testlib::http_get(admin_i_, "/ready").status == 200; }, timeout_ms);
    }
    [[nodiscard]] int64_t initiator_metric(const std::string& name) const {
        return testlib::metric_sum(testlib::http_get(admin_i_, "/metrics").body, name);
    }
    [[nodiscard]] int64_t terminator_metric(const std::string& name) const {
        return testlib::metric_sum(testlib::http_get(admin_t_, "/metrics").body, name);
    }

    std::string dir_;
    uint16_t upstream_port_;
    uint16_t tunnel_port_;
    uint16_t listen_port_;
    uint16_t admin_i_;
    uint16_t admin_t_;
    int shards_;
    std::vector<std::string> extra_;
    std::string pki_;
    int terminator_shards_;
    std::vector<std::string> terminator_extra_;  // flags for the terminator only
    std::string ws_path_;                        // empty: a TCP listener
    std::string upstream_ws_path_;               // empty: a TCP upstream
    std::unique_ptr<Process> terminator;
    std::unique_ptr<Process> initiator;
};

class E2e : public ::testing::Test {
  protected:
    void SetUp() override { dir_ = testlib::make_temp_dir(); }
    void TearDown() override {
        if (HasFailure()) {
            // Keep the logs of a failure on the console: CI shows nothing else.
            for (const char* name : {"initiator.log", "terminator.log", "echo.log", "load.log"}) {
                Process cat({"/bin/sh", "-c", "tail -n 40 " + dir_ + "/" + name + " 1>&2"},
                            dir_ + "/cat.log");
                (void)cat.wait(5000);
                std::fprintf(stderr, "---- %s\n%s\n", name, cat.log().c_str());
            }
        }
        testlib::remove_tree(dir_);
    }

    std::unique_ptr<Process> start_echo(uint16_t port) {
        auto p = std::make_unique<Process>(
            std::vector<std::string>{load_bin(), "serve", "--listen", addr(port), "--mode", "echo"},
            dir_ + "/echo.log");
        EXPECT_TRUE(wait_listening(port, 10000));
        return p;
    }
    // ferry-load verify through the initiator: each connection's echo is checked with xxHash.
    int verify(uint16_t port, int connections, const std::string& bytes_per_connection) {
        Process load({load_bin(), "run", "--target", addr(port), "--mode", "verify",
                      "--connections", std::to_string(connections), "--bytes-per-connection",
                      bytes_per_connection, "--timeout", "240s"},
                     dir_ + "/load.log");
        std::optional<int> rc = load.wait(300000);
        std::fprintf(stderr, "%s", load.log().c_str());
        return rc.value_or(-1);
    }

    std::string dir_;
};

// Sends `bytes` to the tunnel port as a rogue peer and reads until ferry ends the connection:
// how it ended (Timeout: ferry kept it open for 10 s) and what ferry sent before (a GOAWAY, an
// alert). A refused connect is an Error with its errno.
inline ReadResult rogue_peer(uint16_t port, const std::string& bytes) {
    int fd = testlib::connect_to(port);
    if (fd < 0) {
        return {{}, ReadEnd::Error, errno};
    }
    // A write that fails because ferry already dropped us is fine: the read says how it ended.
    (void)testlib::write_all(fd, bytes.data(), bytes.size());
    ReadResult r = testlib::read_all(fd, 10000);
    close(fd);
    return r;
}

}  // namespace ferry::e2e
