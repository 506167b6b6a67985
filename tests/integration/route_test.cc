// End-to-end routing: one initiator with three terminators as --peer. Each WebSocket client
// carries an X-Routing-Key; the terminator's built-in sink answers with the trail of nodes the
// stream crossed, which names the terminator that took it. Keys stick to their terminator, a
// terminator that dies gives up only its own keys (open connections to the others carry on), and
// they come back when it returns; GET /routes names the same terminator as the streams reach.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "e2e_harness.h"
#include "process.h"

namespace ferry::e2e {
namespace {

constexpr size_t kTerminators = 3;
constexpr size_t kShards = 2;
constexpr int kKeys = 24;

std::string terminator_name(size_t i) {
    std::string name = "route-term-";
    name += std::to_string(i);
    return name;
}
// `text` in double quotes, as a JSON string.
std::string quoted(const std::string& text) {
    std::string q = "\"";
    q += text;
    q += '"';
    return q;
}

class RouteE2e : public E2e {
  protected:
    void SetUp() override {
        E2e::SetUp();
        for (size_t i = 0; i < kTerminators; ++i) {
            tunnel_port_[i] = testlib::free_port();
            peer_address_[i] = addr(tunnel_port_[i]);
            admin_t_[i] = testlib::free_port();
            start_terminator(i);
        }
        listen_port_ = testlib::free_port();
        admin_i_ = testlib::free_port();
    }

    // The initiator, with the three terminators as --peer and `extra` flags.
    void start_initiator(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args = {ferry_bin(),
                                         "initiator",
                                         "--listen",
                                         "ws://" + addr(listen_port_) + "/",
                                         "--admin",
                                         addr(admin_i_),
                                         "--shards",
                                         std::to_string(kShards),
                                         "--cpus",
                                         "none",
                                         "--node-name",
                                         "cluster-a-0",
                                         "--auto-trigger",
                                         "0",
                                         "--tunnel-transport",
                                         "plain",
                                         "--connect-timeout",
                                         "2s"};
        for (size_t i = 0; i < kTerminators && static_peers_; ++i) {
            args.insert(args.end(), {"--peer", addr(tunnel_port_[i])});
        }
        args.insert(args.end(), extra.begin(), extra.end());
        initiator_ = std::make_unique<Process>(args, dir_ + "/initiator.log");
    }

    void start_terminator(size_t i) {
        // The TCP upstream is never used: WebSocket streams go to the built-in sink.
        terminator_[i] = std::make_unique<Process>(
            std::vector<std::string>{
                ferry_bin(), "terminator", "--listen-tunnel", addr(tunnel_port_[i]), "--upstream",
                addr(testlib::free_port()), "--admin", addr(admin_t_[i]), "--shards", "1", "--cpus",
                "none", "--node-name", terminator_name(i), "--tunnel-transport", "plain"},
            dir_ + "/terminator-" + std::to_string(i) + ".log");
    }

    // Tunnel connections up, over the initiator's shards (each keeps one per terminator).
    int64_t tunnels_up() const {
        return testlib::metric_sum(testlib::http_get(admin_i_, "/metrics").body, "ferry_tunnel_up");
    }
    // `name` of terminator `i`, summed over the initiator's shards (-1 when absent).
    int64_t peer_metric(const std::string& name, size_t i) const {
        const std::string body = testlib::http_get(admin_i_, "/metrics").body;
        const std::string label = "peer=" + quoted(peer_address_[i]);
        int64_t sum = -1;
        size_t at = 0;
        while ((at = body.find(name + "{", at)) != std::string::npos) {
            const size_t end = body.find('\n', at);
            const std::string line = body.substr(at, end - at);
            at = end;
            if (line.find(label) != std::string::npos) {
                sum = std::max<int64_t>(sum, 0) + std::atoll(line.c_str() + line.rfind(' ') + 1);
            }
        }
        return sum;
    }
    [[nodiscard]] bool wait_tunnels(size_t want) const {
        return testlib::wait_until([&] { return tunnels_up() == static_cast<int64_t>(want); },
                                   30000);
    }

    // A WebSocket connection whose Upgrade request carries `key_field` (a header line, or
    // "?name=value" for the path): the socket, or -1 when nothing connected.
    int open_ws(const std::string& key_field) const {
        int fd = testlib::connect_to(listen_port_);
        if (fd < 0) {
            return -1;
        }
        timeval tv{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        const bool query = key_field.rfind('?', 0) == 0;
        std::string upgrade = "GET /";
        upgrade += query ? key_field : "";
        upgrade +=
            " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
        if (!query) {
            upgrade += key_field;
            upgrade += "\r\n";
        }
        upgrade += "\r\n";
        if (!testlib::write_all(fd, upgrade.data(), upgrade.size())) {
            close(fd);
            return -1;
        }
        return fd;
    }
    // One message on an open connection: the name of the terminator whose sink answered it, ""
    // when no answer came (each read bounded by the socket's 10 s timeout).
    static std::string exchange(int fd) {
        // A masked text frame "hi" with the key 0, so the payload is as written.
        const std::string frame("\x81\x82\x00\x00\x00\x00hi", 8);
        if (fd < 0 || !testlib::write_all(fd, frame.data(), frame.size())) {
            return {};
        }
        std::string got;
        char buf[4096];
        // The sink's reply names every hop; read until the closing bracket of its trail.
        while (got.find("\"trail\"") == std::string::npos ||
               got.find(']', got.find("\"trail\"")) == std::string::npos) {
            const ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0) {
                return {};
            }
            got.append(buf, static_cast<size_t>(n));
        }
        for (size_t i = 0; i < kTerminators; ++i) {
            if (got.find(quoted(terminator_name(i))) != std::string::npos) {
                return terminator_name(i);
            }
        }
        return {};
    }
    // One WebSocket connection with `key` in its X-Routing-Key header and one message: the
    // terminator that answered, "" when none did.
    std::string terminator_of(const std::string& key) const {
        const int fd = open_ws("X-Routing-Key: " + key);
        std::string t = exchange(fd);
        if (fd >= 0) {
            close(fd);
        }
        return t;
    }

    // Where every key goes now.
    std::map<std::string, std::string> routes() const {
        std::map<std::string, std::string> out;
        for (int k = 0; k < kKeys; ++k) {
            const std::string key = "tenant-" + std::to_string(k);
            out[key] = terminator_of(key);
        }
        return out;
    }

    void TearDown() override {
        if (HasFailure()) {
            for (const std::string name :
                 {"initiator.log", "terminator-0.log", "terminator-1.log", "terminator-2.log"}) {
                Process cat({"/bin/sh", "-c", "tail -n 30 " + dir_ + "/" + name + " 1>&2"},
                            dir_ + "/cat.log");
                (void)cat.wait(5000);
                std::fprintf(stderr, "---- %s\n%s\n", name.c_str(), cat.log().c_str());
            }
        }
        // Processes go (killed by PID) before their directory.
        initiator_.reset();
        for (auto& t : terminator_) {
            t.reset();
        }
        E2e::TearDown();
    }

    std::array<uint16_t, kTerminators> tunnel_port_{};
    std::array<uint16_t, kTerminators> admin_t_{};
    std::array<std::string, kTerminators> peer_address_;  // as /metrics labels the peers
    std::array<std::unique_ptr<Process>, kTerminators> terminator_;
    uint16_t listen_port_ = 0;
    uint16_t admin_i_ = 0;
    bool static_peers_ = true;  // --peer for each terminator (else they come from DNS)
    std::unique_ptr<Process> initiator_;
};

TEST_F(RouteE2e, KeysStickToTheirTerminatorOnlyADeadOnesKeysMoveAndTheyComeBack) {
    start_initiator();
    ASSERT_TRUE(wait_tunnels(kShards * kTerminators)) << tunnels_up();

    // Sticky: the same key reaches the same terminator, whichever initiator shard serves it.
    const std::map<std::string, std::string> before = routes();
    std::map<std::string, int> share;
    for (const auto& [key, term] : before) {
        ASSERT_FALSE(term.empty()) << key << " got no answer";
        ++share[term];
    }
    EXPECT_EQ(routes(), before);
    ASSERT_EQ(share.size(), kTerminators) << "every terminator has keys";
    // /metrics counts each terminator's streams: two rounds of its keys so far.
    for (size_t i = 0; i < kTerminators; ++i) {
        EXPECT_EQ(peer_metric("ferry_peer_streams_total", i), 2 * share[terminator_name(i)]) << i;
        EXPECT_EQ(peer_metric("ferry_peer_up", i), static_cast<int64_t>(kShards)) << i;
        // Each terminator's bytes are its own: the HELLOs and its keys' messages both ways.
        EXPECT_GT(peer_metric("ferry_peer_tunnel_bytes_out_total", i), 0) << i;
        EXPECT_GT(peer_metric("ferry_peer_tunnel_bytes_in_total", i), 0) << i;
    }

    // GET /routes names the same terminator (by its tunnel address) and a runner-up.
    for (const auto& [key, term] : before) {
        const testlib::HttpReply r = testlib::http_get(admin_i_, "/routes?key=" + key);
        ASSERT_EQ(r.status, 200) << r.body;
        const auto i = static_cast<size_t>(term.back() - '0');
        EXPECT_NE(r.body.find("\"endpoint\":" + quoted(addr(tunnel_port_[i]))), std::string::npos)
            << key << " -> " << term << ": " << r.body;
        EXPECT_NE(r.body.find("\"runner_up\":\"127.0.0.1:"), std::string::npos) << r.body;
    }
    EXPECT_EQ(testlib::http_get(admin_i_, "/routes").status, 400);

    // Connections that stay open across the failure, one per key of a surviving terminator.
    std::vector<int> survivors;
    const std::string dead = terminator_name(1);
    for (const auto& [key, term] : before) {
        if (term != dead && survivors.size() < 4) {
            survivors.push_back(open_ws("X-Routing-Key: " + key));
            EXPECT_EQ(exchange(survivors.back()), term) << key;
        }
    }

    // Terminator 1 dies: only its keys move, to the others; every other key stays.
    terminator_[1]->signal(SIGKILL);
    (void)terminator_[1]->wait(10000);
    ASSERT_TRUE(wait_tunnels(kShards * (kTerminators - 1))) << tunnels_up();
    EXPECT_EQ(peer_metric("ferry_peer_up", 1), 0);
    const std::map<std::string, std::string> during = routes();
    for (const auto& [key, term] : before) {
        if (term == dead) {
            EXPECT_FALSE(during.at(key).empty()) << key;
            EXPECT_NE(during.at(key), dead) << key;
        } else {
            EXPECT_EQ(during.at(key), term) << key << " moved though its terminator is up";
        }
    }
    // Clients of the surviving terminators saw nothing: their connections still carry messages.
    for (int fd : survivors) {
        EXPECT_FALSE(exchange(fd).empty());
        close(fd);
    }

    // It returns on the same address: its keys come back for new streams.
    start_terminator(1);
    ASSERT_TRUE(wait_tunnels(kShards * kTerminators)) << tunnels_up();
    EXPECT_EQ(routes(), before);
}

// Reads until a WebSocket Close frame arrives on `fd` (bounded by the socket's 10 s timeout):
// its status code, or -1 when the connection ended without one.
int close_code_of(int fd) {
    std::string got;
    char buf[4096];
    for (;;) {
        // Server frames are unmasked; a Close is 0x88, a 7-bit length, then the code.
        for (size_t at = 0; at + 4 <= got.size();) {
            const auto op = static_cast<unsigned char>(got[at]);
            const auto len = static_cast<unsigned char>(got[at + 1]) & 0x7f;
            if (op == 0x88 && len >= 2) {
                return (static_cast<unsigned char>(got[at + 2]) << 8) |
                       static_cast<unsigned char>(got[at + 3]);
            }
            if (len > 125) {
                break;  // only short frames are expected here
            }
            at += 2 + static_cast<size_t>(len);
        }
        const ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            return -1;
        }
        got.append(buf, static_cast<size_t>(n));
    }
}

TEST_F(RouteE2e, ATerminatorThatStopsAnsweringLeavesAfterTheThresholdAndItsClientsMayRetry) {
    // Pings every 500 ms; four unanswered intervals and the terminator is gone.
    start_initiator({"--ping-interval", "500ms", "--peer-failure-threshold", "4"});
    ASSERT_TRUE(wait_tunnels(kShards * kTerminators)) << tunnels_up();
    const std::map<std::string, std::string> before = routes();
    const std::string silent = terminator_name(2);
    // Each terminator's round trip is measured by its own pings.
    for (size_t i = 0; i < kTerminators; ++i) {
        EXPECT_TRUE(
            testlib::wait_until([&] { return peer_metric("ferry_peer_rtt_us", i) > 0; }, 10000))
            << i;
    }
    int victim = -1;
    int survivor = -1;
    for (const auto& [key, term] : before) {
        if (term == silent && victim < 0) {
            victim = open_ws("X-Routing-Key: " + key);
            ASSERT_EQ(exchange(victim), term);
        } else if (term != silent && survivor < 0) {
            survivor = open_ws("X-Routing-Key: " + key);
            ASSERT_EQ(exchange(survivor), term);
        }
    }
    ASSERT_GE(victim, 0);
    ASSERT_GE(survivor, 0);

    // Terminator 2 hangs: its sockets stay open, nothing answers (unlike a crash, no RST).
    terminator_[2]->signal(SIGSTOP);
    // Its client is told to reconnect: Close 1012 (Service Restart), not a silent hang.
    EXPECT_EQ(close_code_of(victim), 1012);
    close(victim);
    ASSERT_TRUE(wait_tunnels(kShards * (kTerminators - 1))) << tunnels_up();
    EXPECT_EQ(peer_metric("ferry_peer_up", 2), 0);
    EXPECT_NE(initiator_->log().find("missed --peer-failure-threshold ping intervals"),
              std::string::npos);
    // Its keys moved to their next choice; no other key moved, and the other client saw nothing.
    const std::map<std::string, std::string> during = routes();
    for (const auto& [key, term] : before) {
        if (term == silent) {
            EXPECT_FALSE(during.at(key).empty()) << key;
            EXPECT_NE(during.at(key), silent) << key;
        } else {
            EXPECT_EQ(during.at(key), term) << key;
        }
    }
    EXPECT_FALSE(exchange(survivor).empty());
    close(survivor);

    // It answers again: redialed (with backoff), its keys come back for new streams.
    terminator_[2]->signal(SIGCONT);
    ASSERT_TRUE(wait_tunnels(kShards * kTerminators)) << tunnels_up();
    EXPECT_EQ(routes(), before);
}

TEST_F(RouteE2e, PeerWeightsTiltTheSharesAndStreamsFollow) {
    // Terminator 0 weighs 50, the others 1: it should win about 50/52 of the keys.
    start_initiator({"--peer-weights", addr(tunnel_port_[0]) + "=50"});
    ASSERT_TRUE(wait_tunnels(kShards * kTerminators)) << tunnels_up();
    int heavy = 0;
    constexpr int kProbe = 200;
    for (int k = 0; k < kProbe; ++k) {
        const testlib::HttpReply r =
            testlib::http_get(admin_i_, "/routes?key=user-" + std::to_string(k));
        ASSERT_EQ(r.status, 200) << r.body;
        heavy += r.body.find("\"endpoint\":" + quoted(addr(tunnel_port_[0]))) != std::string::npos;
    }
    EXPECT_GE(heavy, kProbe * 85 / 100);
    EXPECT_LT(heavy, kProbe) << "the light peers still get some keys";
    // Streams go where /routes says.
    for (int k = 0; k < 6; ++k) {
        const std::string key = "user-" + std::to_string(k);
        const std::string body = testlib::http_get(admin_i_, "/routes?key=" + key).body;
        const std::string term = terminator_of(key);
        ASSERT_FALSE(term.empty());
        const auto i = static_cast<size_t>(term.back() - '0');
        EXPECT_NE(body.find("\"endpoint\":" + quoted(addr(tunnel_port_[i]))), std::string::npos)
            << key << " -> " << term << ": " << body;
    }
}

TEST_F(RouteE2e, AQueryParameterKeyGoesWhereRoutesSays) {
    start_initiator({"--route-key", "query:room"});
    ASSERT_TRUE(wait_tunnels(kShards * kTerminators)) << tunnels_up();
    std::map<std::string, int> share;
    for (int k = 0; k < 12; ++k) {
        const std::string room = "room " + std::to_string(k);
        const std::string encoded = "room%20" + std::to_string(k);
        const int fd = open_ws("?room=" + encoded);
        const std::string term = exchange(fd);
        if (fd >= 0) {
            close(fd);
        }
        ASSERT_FALSE(term.empty()) << room;
        ++share[term];
        const testlib::HttpReply r = testlib::http_get(admin_i_, "/routes?key=" + encoded);
        ASSERT_EQ(r.status, 200) << r.body;
        EXPECT_NE(r.body.find("\"key\":" + quoted(room)), std::string::npos) << r.body;
        const auto i = static_cast<size_t>(term.back() - '0');
        EXPECT_NE(r.body.find("\"endpoint\":" + quoted(addr(tunnel_port_[i]))), std::string::npos)
            << room << " -> " << term << ": " << r.body;
    }
    EXPECT_GE(share.size(), 2U) << "the rooms spread over the terminators";
}

// --peer-dns: the terminators are whatever a DNS name says (dns_server.py, a resolver this test
// controls), on 127.0.0.1, .2 and .3 at one port, as a headless Service's pods would be.
class DnsRouteE2e : public RouteE2e {
  protected:
    void SetUp() override {
        E2e::SetUp();  // not RouteE2e's: these terminators differ by address, not by port
        static_peers_ = false;
        dns_port_ = testlib::free_port();
        port_ = testlib::free_port();
        listen_port_ = testlib::free_port();
        admin_i_ = testlib::free_port();
        records_ = dir_ + "/records";
        write_records({1, 2});
        const char* src = std::getenv("FERRY_SOURCE_DIR");
        dns_ = std::make_unique<Process>(
            std::vector<std::string>{
                "/usr/bin/python3",
                std::string(src != nullptr ? src : ".") + "/tests/integration/dns_server.py",
                "--port", std::to_string(dns_port_), "--records", records_},
            dir_ + "/dns.log");
        for (size_t i = 0; i < kTerminators; ++i) {
            tunnel_port_[i] = port_;
            peer_address_[i] = host(i) + ":" + std::to_string(port_);
            admin_t_[i] = testlib::free_port();
            terminator_[i] = std::make_unique<Process>(
                std::vector<std::string>{ferry_bin(), "terminator", "--listen-tunnel",
                                         host(i) + ":" + std::to_string(port_), "--upstream",
                                         addr(testlib::free_port()), "--admin", addr(admin_t_[i]),
                                         "--shards", "1", "--cpus", "none", "--node-name",
                                         terminator_name(i), "--tunnel-transport", "plain"},
                dir_ + "/terminator-" + std::to_string(i) + ".log");
        }
    }
    void TearDown() override {
        dns_.reset();
        RouteE2e::TearDown();
    }
    static std::string host(size_t i) { return "127.0.0." + std::to_string(i + 1); }
    // The A records the name has from now on: 127.0.0.N for each N.
    void write_records(const std::vector<int>& hosts) const {
        const std::string tmp = records_ + ".new";
        {
            std::ofstream out(tmp);
            for (int h : hosts) {
                out << "127.0.0." << h << "\n";
            }
        }
        std::rename(tmp.c_str(), records_.c_str());
    }
    uint16_t dns_port_ = 0;
    uint16_t port_ = 0;
    std::string records_;
    std::unique_ptr<Process> dns_;
};

TEST_F(DnsRouteE2e, PeersFollowTheNameAndStreamsToUnchangedPeersAreNotTouched) {
    start_initiator({"--peer-dns", "terminators.test:" + std::to_string(port_), "--dns-server",
                     "127.0.0.1:" + std::to_string(dns_port_), "--dns-refresh", "300ms"});
    ASSERT_TRUE(wait_tunnels(kShards * 2)) << tunnels_up();
    EXPECT_EQ(peer_metric("ferry_peer_up", 2), -1) << "not in DNS yet";
    const std::map<std::string, std::string> two = routes();
    for (const auto& [key, term] : two) {
        ASSERT_FALSE(term.empty()) << key;
        EXPECT_NE(term, terminator_name(2)) << key;
    }
    // A client of each of the first two stays connected through every change below.
    std::vector<std::pair<int, std::string>> open;
    for (const auto& [key, term] : two) {
        if (open.size() < 2 && (open.empty() || open.back().second != term)) {
            open.emplace_back(open_ws("X-Routing-Key: " + key), term);
            ASSERT_EQ(exchange(open.back().first), term);
        }
    }

    // The Service scales up: the third pod appears and takes about a third of the keys; the
    // keys that move, move only to it.
    write_records({1, 2, 3});
    ASSERT_TRUE(wait_tunnels(kShards * 3)) << tunnels_up();
    const std::map<std::string, std::string> three = routes();
    int moved = 0;
    for (const auto& [key, term] : three) {
        if (term != two.at(key)) {
            EXPECT_EQ(term, terminator_name(2)) << key << " moved elsewhere than the new pod";
            ++moved;
        }
    }
    EXPECT_GT(moved, 0);
    EXPECT_LT(moved, kKeys * 2 / 3);

    // It scales down: the second pod leaves DNS. Its keys move; nothing else does.
    write_records({1, 3});
    ASSERT_TRUE(testlib::wait_until([&] { return peer_metric("ferry_peer_up", 1) == 0; }, 20000))
        << peer_metric("ferry_peer_up", 1);
    const std::map<std::string, std::string> after = routes();
    for (const auto& [key, term] : three) {
        if (term == terminator_name(1)) {
            EXPECT_NE(after.at(key), terminator_name(1)) << key;
            EXPECT_FALSE(after.at(key).empty()) << key;
        } else {
            EXPECT_EQ(after.at(key), term) << key;
        }
    }
    // The client of the first pod never noticed; the second pod's drained connection still
    // serves its open client until it leaves.
    for (auto& [fd, term] : open) {
        EXPECT_EQ(exchange(fd), term);
        close(fd);
    }
    EXPECT_NE(initiator_->log().find("no longer in DNS"), std::string::npos);
}

}  // namespace
}  // namespace ferry::e2e
