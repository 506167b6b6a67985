// End-to-end tests of what an armored tunnel must withstand: connections that never
// authenticate, peers that never answer, aborts that must stay aborts, slow admin clients,
// SIGHUP, process-wide limits and log floods. Real processes on loopback (e2e_harness.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e_harness.h"
#include "process.h"

namespace ferry::e2e {
namespace {

// The file descriptors a test needs for thousands of idle connections.
void raise_fd_limit(rlim_t want) {
    rlimit r{};
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = std::min(std::max(r.rlim_cur, want), r.rlim_max);
    setrlimit(RLIMIT_NOFILE, &r);
}

// Resident memory of a process in KiB (VmRSS), or -1.
long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::atol(line.c_str() + 6);
        }
    }
    return -1;
}

// The bytes of a real TLS 1.3 ClientHello record (the fuzz corpus keeps one behind a mode byte).
std::string client_hello() {
    const char* src = std::getenv("FERRY_SOURCE_DIR");
    std::ifstream in(
        std::string(src != nullptr ? src : ".") + "/tests/fuzz/corpus/tls_handshake/client_hello",
        std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string all = ss.str();
    return all.size() > 1 ? all.substr(1) : all;
}

size_t count_of(const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

class Hardening : public E2e {};

TEST_F(Hardening, ThousandsOfSilentConnectionsCannotLockANewInitiatorOut) {
    raise_fd_limit(8192);
    const std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {"--handshake-timeout", "60s"}, pki);
    ASSERT_TRUE(t.ready());
    // Anyone who reaches the LoadBalancer can do this: 1,100 connections that never speak,
    // more than the 1,024 tunnels a shard takes.
    const long rss_before = rss_kib(t.terminator->pid());
    std::vector<int> silent;
    for (int i = 0; i < 1100; ++i) {
        int fd = testlib::connect_to(t.tunnel_port_);
        ASSERT_GE(fd, 0) << "connection " << i;
        silent.push_back(fd);
    }
    ASSERT_TRUE(testlib::wait_until(
        [&] { return t.terminator_metric("ferry_pending_evicted_total") >= 1100 - 256; }, 20000))
        << "the silent connections share a budget of 256 and the oldest make room";
    EXPECT_LE(t.terminator_metric("ferry_tunnel_pending"), 256);
    const long rss_after = rss_kib(t.terminator->pid());
    std::fprintf(stderr, "terminator RSS %ld KiB -> %ld KiB with 256 silent connections held\n",
                 rss_before, rss_after);
    // A new initiator (a restart, a second node) still gets its tunnel.
    t.initiator.reset();
    const auto start = std::chrono::steady_clock::now();
    t.start_initiator();
    ASSERT_TRUE(t.ready(20000)) << t.initiator->log();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    std::fprintf(stderr,
                 "a new initiator was ready %lld ms after it started, past 1,100 silent "
                 "connections\n",
                 static_cast<long long>(ms));
    EXPECT_EQ(verify(t.listen_port_, 4, "256KiB"), 0);
    for (int fd : silent) {
        close(fd);
    }
}

TEST_F(Hardening, ConnectionsThatNeverFinishTheirHandshakeAreClosedInTime) {
    const std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {"--handshake-timeout", "1s"}, pki);
    ASSERT_TRUE(t.ready());
    // Silence; a 5-byte record header and no record; a ClientHello and then nothing.
    EXPECT_EQ(rogue_peer(t.tunnel_port_, "").end, ReadEnd::Eof);
    EXPECT_EQ(rogue_peer(t.tunnel_port_, std::string("\x16\x03\x01\x02\x00", 5)).end, ReadEnd::Eof);
    ReadResult hello = rogue_peer(t.tunnel_port_, client_hello());
    EXPECT_EQ(hello.end, ReadEnd::Eof);
    EXPECT_FALSE(hello.bytes.empty()) << "the server answered the ClientHello, then gave up";
    EXPECT_GE(t.terminator_metric("ferry_handshake_timeouts_total"), 3);
    EXPECT_EQ(t.terminator_metric("ferry_tunnel_pending"), 0);
    // The real tunnel never noticed.
    EXPECT_EQ(verify(t.listen_port_, 2, "256KiB"), 0);
}

TEST_F(Hardening, AnInitiatorFacingAPeerThatNeverAnswersTlsRetriesAndSaysSo) {
    uint16_t mute_port = 0;
    int mute = listen_on(&mute_port);
    std::atomic<bool> stop{false};
    std::vector<int> held;
    std::thread acceptor([&] {
        while (!stop) {
            int fd = accept_within(mute, 100);
            if (fd >= 0) {
                held.push_back(fd);  // accepted, never answered
            }
        }
    });
    const std::string pki = make_pki(dir_);
    const uint16_t admin = testlib::free_port();
    std::vector<std::string> args = {ferry_bin(),
                                     "initiator",
                                     "--listen",
                                     addr(testlib::free_port()),
                                     "--peer",
                                     addr(mute_port),
                                     "--admin",
                                     addr(admin),
                                     "--shards",
                                     "1",
                                     "--cpus",
                                     "none",
                                     "--handshake-timeout",
                                     "1s"};
    for (const std::string& f : tls_flags(pki, "initiator")) {
        args.push_back(f);
    }
    Process initiator(args, dir_ + "/initiator.log");
    EXPECT_TRUE(testlib::wait_until(
        [&] {
            return testlib::metric_sum(testlib::http_get(admin, "/metrics").body,
                                       "ferry_tunnel_connect_failures_total") >= 2;
        },
        20000))
        << initiator.log();
    EXPECT_GE(testlib::metric_sum(testlib::http_get(admin, "/metrics").body,
                                  "ferry_handshake_timeouts_total"),
              2);
    EXPECT_EQ(testlib::http_get(admin, "/ready").status, 503);
    EXPECT_NE(initiator.log().find("failed before HELLO"), std::string::npos) << initiator.log();
    stop = true;
    acceptor.join();
    for (int fd : held) {
        close(fd);
    }
    close(mute);
}

TEST_F(Hardening, AClientResetReachesTheUpstreamAsAReset) {
    uint16_t up_port = 0;
    int lfd = listen_on(&up_port);
    ReadResult at_upstream;
    std::thread upstream([&] {
        int fd = accept_within(lfd, 20000);
        if (fd >= 0) {
            at_upstream = testlib::read_all(fd, 20000);
            close(fd);
        }
    });
    Tunnel t(dir_, up_port, 1);
    ASSERT_TRUE(t.ready());
    int c = testlib::connect_to(t.listen_port_);
    ASSERT_GE(c, 0);
    ASSERT_TRUE(testlib::write_all(c, "half an upload", 14));
    ASSERT_TRUE(testlib::wait_until(
        [&] { return t.terminator_metric("ferry_bytes_to_local_total") >= 14; }, 10000));
    const linger hard{1, 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    close(c);  // RST
    upstream.join();
    close(lfd);
    EXPECT_EQ(at_upstream.bytes, "half an upload");
    EXPECT_EQ(at_upstream.end, ReadEnd::Reset) << "a truncated upload must not end in a FIN";
}

TEST_F(Hardening, ADrainThatHitsItsDeadlineResetsWhatIsLeftAndSaysSo) {
    uint16_t up_port = 0;
    int lfd = listen_on(&up_port);
    std::thread upstream([&] {
        int fd = accept_within(lfd, 20000);
        if (fd >= 0) {
            (void)testlib::read_all(fd, 15000);  // never answers, never closes
            close(fd);
        }
    });
    Tunnel t(dir_, up_port, 1, {"--drain-timeout", "1s"});
    ASSERT_TRUE(t.ready());
    int c = testlib::connect_to(t.listen_port_);
    ASSERT_GE(c, 0);
    ASSERT_TRUE(testlib::write_all(c, "waiting", 7));
    ASSERT_TRUE(testlib::wait_until([&] { return t.initiator_metric("ferry_streams_active") == 1; },
                                    10000));
    t.initiator->signal(SIGTERM);
    ReadResult r = testlib::read_all(c, 15000);
    close(c);
    EXPECT_EQ(r.end, ReadEnd::Reset) << "the client must see the stream was cut";
    EXPECT_EQ(t.initiator->wait(15000).value_or(-1), 3) << "the exit status tells of the resets";
    EXPECT_NE(t.initiator->log().find("drain deadline passed: resetting 1 open stream"),
              std::string::npos)
        << t.initiator->log();
    upstream.join();
    close(lfd);
}

TEST_F(Hardening, SlowAdminClientsCannotStarveTheProbes) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {"--admin-timeout", "2s"});
    ASSERT_TRUE(t.ready());
    // 200 clients that connect to the admin port and send half a request line, slowly.
    std::vector<int> slow;
    for (int i = 0; i < 200; ++i) {
        int fd = testlib::connect_to(t.admin_i_);
        ASSERT_GE(fd, 0);
        (void)testlib::write_all(fd, "GET /hea", 8);
        slow.push_back(fd);
    }
    // Probes still get their answer (the oldest slow client makes room for each).
    for (int i = 0; i < 5; ++i) {
        const auto start = std::chrono::steady_clock::now();
        EXPECT_EQ(testlib::http_get(t.admin_i_, "/health").status, 200);
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
        std::fprintf(stderr, "/health answered in %lld us with 200 slow clients on the port\n",
                     static_cast<long long>(us));
    }
    EXPECT_EQ(testlib::http_get(t.admin_i_, "/ready").status, 200);
    // The slow ones are closed once their time is up.
    ReadResult r = testlib::read_all(slow.back(), 10000);
    EXPECT_EQ(r.end, ReadEnd::Eof);
    for (int fd : slow) {
        close(fd);
    }
}

// One raw request to the admin port; the whole reply.
std::string admin_request(uint16_t port, const std::string& request) {
    int fd = testlib::connect_to(port);
    if (fd < 0) {
        return {};
    }
    (void)testlib::write_all(fd, request.data(), request.size());
    std::string reply = testlib::read_all(fd, 5000).bytes;
    close(fd);
    return reply;
}

TEST_F(Hardening, AdminAnswersHeadNamesItsStatusesAndStaysUpWhileDraining) {
    uint16_t up_port = 0;
    int lfd = listen_on(&up_port);
    std::thread upstream([&] {
        int fd = accept_within(lfd, 20000);
        if (fd >= 0) {
            (void)testlib::read_all(fd, 8000);
            close(fd);
        }
    });
    Tunnel t(dir_, up_port, 1, {"--drain-timeout", "5s"});
    ASSERT_TRUE(t.ready());
    const std::string head = admin_request(t.admin_i_, "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << head;
    EXPECT_NE(head.find("Content-Length: 3\r\n"), std::string::npos) << head;
    EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "") << "HEAD has no body";
    const std::string big = admin_request(t.admin_i_, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                                          std::string(8000, 'a') + "\r\n\r\n");
    EXPECT_EQ(big.rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0), 0U) << big;
    // A stream keeps the initiator draining; meanwhile the probes say alive but not ready.
    int c = testlib::connect_to(t.listen_port_);
    ASSERT_GE(c, 0);
    ASSERT_TRUE(testlib::write_all(c, "x", 1));
    ASSERT_TRUE(testlib::wait_until([&] { return t.initiator_metric("ferry_streams_active") == 1; },
                                    10000));
    t.initiator->signal(SIGTERM);
    EXPECT_TRUE(testlib::wait_until(
        [&] { return testlib::http_get(t.admin_i_, "/ready").status == 503; }, 5000));
    EXPECT_EQ(testlib::http_get(t.admin_i_, "/health").status, 200);
    close(c);
    EXPECT_TRUE(t.initiator->wait(15000).has_value());
    upstream.join();
    close(lfd);
}

TEST_F(Hardening, SighupReloadsCertificatesAndTheLogLevelWithoutDroppingAStream) {
    const std::string pki = make_pki(dir_);
    const std::string level_file = dir_ + "/log-level";
    std::ofstream(level_file) << "info\n";
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {"--log-level-file", level_file}, pki);
    ASSERT_TRUE(t.ready());
    int c = testlib::connect_to(t.listen_port_);
    ASSERT_GE(c, 0);
    char buf[8] = {};
    ASSERT_TRUE(testlib::write_all(c, "before", 6));
    ASSERT_EQ(recv(c, buf, 6, MSG_WAITALL), 6);
    std::ofstream(level_file) << "debug\n";
    t.initiator->signal(SIGHUP);
    t.terminator->signal(SIGHUP);
    ASSERT_TRUE(testlib::wait_until(
        [&] {
            return t.initiator->log().find("certificates reloaded (SIGHUP") != std::string::npos &&
                   t.terminator->log().find("log level is now DEBUG") != std::string::npos;
        },
        10000))
        << t.initiator->log();
    EXPECT_TRUE(t.initiator->running());
    EXPECT_TRUE(t.terminator->running());
    // The open stream carries on (a rotation onto the new certificates drains the old
    // connection only once its streams finish).
    ASSERT_TRUE(testlib::write_all(c, "after!", 6));
    ASSERT_EQ(recv(c, buf, 6, MSG_WAITALL), 6);
    EXPECT_EQ(std::string(buf, 6), "after!");
    close(c);
    EXPECT_EQ(t.initiator_metric("ferry_resets_received_total"), 0);
}

// Runs a shell command line; its output (stdout and stderr), trimmed.
std::string shell(const std::string& dir, const std::string& command) {
    Process p({"/bin/sh", "-c", command}, dir + "/shell.log");
    (void)p.wait(30000);
    std::string out = p.log();
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
        out.pop_back();
    }
    return out;
}

// The SHA-256 fingerprint of the certificate the TLS server on `port` presents in a new
// handshake (the initiator's client certificate offered), or of a certificate file.
std::string served_fingerprint(const std::string& dir, const std::string& pki, uint16_t port) {
    return shell(dir, "openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                          " -tls1_3 -cert " + pki + "/initiator.crt -key " + pki +
                          "/initiator.key -CAfile " + pki +
                          "/ca.crt </dev/null 2>/dev/null | openssl x509 -noout -fingerprint "
                          "-sha256 2>&1");
}
std::string file_fingerprint(const std::string& dir, const std::string& cert) {
    return shell(dir, "openssl x509 -noout -fingerprint -sha256 -in " + cert + " 2>&1");
}

TEST_F(Hardening, SighupWithNewCertificateFilesUnderTrafficResetsNothingAndNewHandshakesUseThem) {
    const std::string pki = make_pki(dir_);
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1, {}, pki);
    ASSERT_TRUE(t.ready());
    const std::string old_print = file_fingerprint(dir_, pki + "/terminator.crt");
    ASSERT_EQ(old_print.rfind("sha256 Fingerprint=", 0), 0U) << old_print;
    ASSERT_EQ(served_fingerprint(dir_, pki, t.tunnel_port_), old_print);

    // Four clients echo numbered blocks through the tunnel for as long as the test runs; each
    // checks every byte that comes back.
    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::atomic<uint64_t> echoed{0};
    std::vector<std::thread> clients;
    for (int k = 0; k < 4; ++k) {
        clients.emplace_back([&, k] {
            int c = testlib::connect_to(t.listen_port_);
            if (c < 0) {
                ++failures;
                return;
            }
            std::string block(16384, '\0');
            std::string back(block.size(), '\0');
            for (uint32_t n = 0; !stop; ++n) {
                for (size_t i = 0; i < block.size(); ++i) {
                    block[i] = static_cast<char>((n * 131 + i * 7 + static_cast<size_t>(k)) & 0xff);
                }
                if (!testlib::write_all(c, block.data(), block.size()) ||
                    recv(c, back.data(), back.size(), MSG_WAITALL) !=
                        static_cast<ssize_t>(back.size()) ||
                    back != block) {
                    ++failures;
                    break;
                }
                echoed += block.size();
            }
            close(c);
        });
    }
    ASSERT_TRUE(testlib::wait_until([&] { return echoed.load() > (1U << 20); }, 10000));

    // The renewed certificate: same CA and names, a new key. Both files are replaced by rename,
    // as a Secret update lands, then SIGHUP.
    const std::string renew =
        "cd " + pki +
        " && printf '[req]\\ndistinguished_name = dn\\nprompt = no\\n[dn]\\nCN = "
        "ferry-terminator\\n[server]\\nbasicConstraints = critical, CA:FALSE\\nkeyUsage = "
        "critical, digitalSignature\\nextendedKeyUsage = serverAuth\\nsubjectAltName = "
        "DNS:ferry-terminator, DNS:localhost, IP:127.0.0.1\\n' >renew.cnf"
        " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out renewed.key"
        " && openssl req -config renew.cnf -new -key renewed.key -out renewed.csr"
        " && openssl x509 -req -sha256 -days 2 -in renewed.csr -CA ca.crt -CAkey ca.key"
        " -set_serial 0x4242 -extfile renew.cnf -extensions server -out renewed.crt"
        " && mv renewed.key terminator.key && mv renewed.crt terminator.crt && echo renewed";
    ASSERT_NE(shell(dir_, renew).find("renewed"), std::string::npos) << shell(dir_, "true");
    const std::string new_print = file_fingerprint(dir_, pki + "/terminator.crt");
    ASSERT_NE(new_print, old_print);
    const uint64_t before = echoed.load();
    t.terminator->signal(SIGHUP);
    ASSERT_TRUE(testlib::wait_until(
        [&] {
            return t.terminator->log().find("certificates reloaded (SIGHUP") != std::string::npos;
        },
        10000))
        << t.terminator->log();
    // New handshakes present the new certificate...
    EXPECT_EQ(served_fingerprint(dir_, pki, t.tunnel_port_), new_print);
    // ...while the open streams carry on, untouched.
    EXPECT_TRUE(testlib::wait_until([&] { return echoed.load() > before + (4U << 20); }, 20000));
    stop = true;
    for (std::thread& c : clients) {
        c.join();
    }
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(t.initiator_metric("ferry_resets_received_total"), 0);
    EXPECT_EQ(t.terminator_metric("ferry_resets_received_total"), 0);
    EXPECT_TRUE(t.initiator->running());
    EXPECT_TRUE(t.terminator->running());
    // And new streams work as before.
    EXPECT_EQ(verify(t.listen_port_, 4, "256KiB"), 0);
}

TEST_F(Hardening, SigtermUnderWebSocketLoadTearsNoMessageAndExitsWithinTheDeadline) {
    uint16_t ws_port = testlib::free_port();
    Process upstream({load_bin(), "serve", "--listen", addr(ws_port), "--mode", "ws-echo"},
                     dir_ + "/echo.log");
    ASSERT_TRUE(wait_listening(ws_port, 10000));
    Tunnel t(dir_, ws_port, 1, {}, {}, 0, {}, "/", "/");
    ASSERT_TRUE(t.ready());
    // 16 WebSocket clients, each message different and every second and third one fragmented,
    // every echo checked byte for byte; they run 4 s and then close normally.
    Process load({load_bin(), "run", "--target", addr(t.listen_port_), "--mode", "ws-verify",
                  "--connections", "16", "--size", "4096", "--duration", "4s", "--warmup", "0s"},
                 dir_ + "/load.log");
    ASSERT_TRUE(testlib::wait_until(
        [&] { return t.initiator_metric("ferry_streams_active") == 16; }, 10000));
    t.initiator->signal(SIGTERM);
    // Draining: not ready, new clients refused, the 16 open ones still served.
    EXPECT_TRUE(testlib::wait_until(
        [&] { return testlib::http_get(t.admin_i_, "/ready").status == 503; }, 5000));
    EXPECT_TRUE(testlib::wait_until([&] { return refuses_connections(t.listen_port_); }, 5000));
    EXPECT_EQ(t.initiator_metric("ferry_streams_active"), 16);
    // Every message the clients got is whole and right, none went missing...
    std::optional<int> load_rc = load.wait(30000);
    EXPECT_EQ(load_rc.value_or(-1), 0) << load.log();
    EXPECT_NE(load.log().find("s measured, 0 errors"), std::string::npos) << load.log();
    // ...and once they closed, the initiator exits 0, well within --drain-timeout (10 s).
    std::optional<int> rc = t.initiator->wait(15000);
    ASSERT_TRUE(rc.has_value());
    EXPECT_EQ(*rc, 0);
    EXPECT_NE(t.initiator->log().find("drained"), std::string::npos);
    EXPECT_EQ(t.initiator->log().find("resetting"), std::string::npos) << t.initiator->log();
}

TEST_F(Hardening, MaxConnectionsHoldsForTheWholeProcessWhateverTheShards) {
    uint16_t up_port = 0;
    int lfd = listen_on(&up_port);
    std::atomic<bool> stop{false};
    std::atomic<int> accepted{0};
    std::vector<int> held;
    std::thread upstream([&] {
        while (!stop) {
            int fd = accept_within(lfd, 100);
            if (fd >= 0) {
                held.push_back(fd);
                ++accepted;
            }
        }
    });
    // One initiator shard: its one tunnel lands on one of the two terminator shards, which must
    // still be allowed all four connections of the process.
    Tunnel t(dir_, up_port, 1, {}, {}, /*terminator_shards=*/2, {"--max-connections", "4"});
    ASSERT_TRUE(t.ready());
    std::vector<int> clients;
    for (int i = 0; i < 6; ++i) {
        int c = testlib::connect_to(t.listen_port_);
        ASSERT_GE(c, 0);
        clients.push_back(c);
        (void)testlib::write_all(c, "x", 1);
    }
    EXPECT_TRUE(testlib::wait_until([&] { return accepted.load() >= 4; }, 10000))
        << "only " << accepted.load() << " upstream connections";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(accepted.load(), 4);
    EXPECT_GE(t.terminator_metric("ferry_connections_rejected_total"), 2);
    for (int c : clients) {
        close(c);
    }
    stop = true;
    upstream.join();
    for (int fd : held) {
        close(fd);
    }
    close(lfd);
}

TEST_F(Hardening, RefusalLogLinesNameThePeerAndAreRateLimited) {
    uint16_t echo_port = testlib::free_port();
    auto echo = start_echo(echo_port);
    Tunnel t(dir_, echo_port, 1);
    ASSERT_TRUE(t.ready());
    for (int i = 0; i < 300; ++i) {
        int fd = testlib::connect_to(t.tunnel_port_);
        ASSERT_GE(fd, 0);
        (void)testlib::write_all(fd, "GET / HTTP/1.1\r\n\r\n", 18);
        close(fd);
    }
    // Each one failed, or was closed to make room while the burst filled the pending budget.
    ASSERT_TRUE(testlib::wait_until(
        [&] {
            return t.terminator_metric("ferry_tunnel_connect_failures_total") +
                       t.terminator_metric("ferry_pending_evicted_total") >=
                   300;
        },
        20000));
    const std::string log = t.terminator->log();
    const size_t lines = count_of(log, "tunnel connection from ");
    EXPECT_GE(lines, 1U);
    EXPECT_LE(lines, 40U) << "300 refusals must not write 300 lines";
    EXPECT_NE(log.find("tunnel connection from 127.0.0.1:"), std::string::npos) << log;
    // The burst's few written lines may all be evictions (on a slow machine most of the 300 are
    // evicted before their bytes are read); once the limiter's window has passed, a lone bad
    // peer's line names its own reason.
    EXPECT_TRUE(testlib::wait_until(
        [&] {
            int fd = testlib::connect_to(t.tunnel_port_);
            if (fd >= 0) {
                (void)testlib::write_all(fd, "GET / HTTP/1.1\r\n\r\n", 18);
                close(fd);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            return t.terminator->log().find("bad preface") != std::string::npos;
        },
        15000))
        << "the reason is in the line: " << t.terminator->log();
}

}  // namespace
}  // namespace ferry::e2e
