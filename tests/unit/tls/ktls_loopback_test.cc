// kTLS on a real kernel: a ferry handshake over a loopback TCP pair, then the keys handed to the
// kernel, then plain send/recv. Needs the TLS ULP, so it runs in the VM (suite 'ktls'); where
// the kernel lacks kTLS it prints why and exits 77 (skip). The VM has no openssl CLI, so the
// test PKI is made here with libcrypto.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ferry/tls/handshake.h"
#include "ferry/tls/ktls.h"
#include "ferry/tls/record_layer.h"
#include "ferry/tls/tls_context.h"

namespace ferry::tls {
namespace {

using Bytes = std::vector<std::byte>;
using ::testing::HasSubstr;

// ---- test PKI (CA, terminator, initiator), P-256, valid from an hour ago for a day ----------

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    ASSERT_NE(ext, nullptr) << value;
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

X509* make_cert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, const char* san,
                const char* eku) {
    static long serial = 1;
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509* signer = issuer != nullptr ? issuer : cert;
    X509_set_issuer_name(cert, X509_get_subject_name(signer));
    if (san == nullptr) {
        add_ext(cert, signer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(cert, signer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert, signer, NID_key_usage, "critical,digitalSignature");
        add_ext(cert, signer, NID_ext_key_usage, eku);
        add_ext(cert, signer, NID_subject_alt_name, san);
    }
    EXPECT_GT(X509_sign(cert, issuer_key != nullptr ? issuer_key : key, EVP_sha256()), 0);
    return cert;
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr) << path;
    if (cert != nullptr) {
        PEM_write_X509(f, cert);
    } else {
        PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    }
    std::fclose(f);
}

class Pki final : public ::testing::Environment {
  public:
    void SetUp() override {
        char tmpl[] = "/tmp/ferry-ktls-test-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        EVP_PKEY* ca_key = EVP_EC_gen("P-256");
        X509* ca = make_cert("ferry test CA", ca_key, nullptr, nullptr, nullptr, nullptr);
        write_pem(dir + "/ca.crt", ca, nullptr);
        const struct {
            const char* name;
            const char* san;
            const char* eku;
        } leaves[] = {{"ferry-terminator", "DNS:ferry-terminator", "serverAuth"},
                      {"ferry-initiator", "DNS:ferry-initiator", "clientAuth"}};
        for (const auto& leaf : leaves) {
            EVP_PKEY* key = EVP_EC_gen("P-256");
            X509* cert = make_cert(leaf.name, key, ca, ca_key, leaf.san, leaf.eku);
            write_pem(dir + "/" + leaf.name + ".crt", cert, nullptr);
            write_pem(dir + "/" + leaf.name + ".key", nullptr, key);
            X509_free(cert);
            EVP_PKEY_free(key);
        }
        X509_free(ca);
        EVP_PKEY_free(ca_key);
    }
    void TearDown() override {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
    std::string dir;
};

Pki* g_pki = nullptr;

TlsConfig config(bool is_server, const char* suites = kDefaultCiphersuites) {
    TlsConfig c;
    c.is_server = is_server;
    const std::string me = is_server ? "ferry-terminator" : "ferry-initiator";
    c.cert_file = g_pki->dir + "/" + me + ".crt";
    c.key_file = g_pki->dir + "/" + me + ".key";
    c.ca_file = g_pki->dir + "/ca.crt";
    c.peer_name = is_server ? "" : "ferry-terminator";
    c.ciphersuites = suites;
    return c;
}

// ---- sockets ---------------------------------------------------------------------------

struct SocketPair {
    SocketPair() {
        const int listener = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(addr);
        EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
        EXPECT_EQ(listen(listener, 1), 0);
        EXPECT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
        client = socket(AF_INET, SOCK_STREAM, 0);
        EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
        server = accept(listener, nullptr, nullptr);
        EXPECT_GE(server, 0);
        close(listener);
    }
    ~SocketPair() {
        close(client);
        close(server);
    }
    int client = -1;
    int server = -1;
};

void send_all(int fd, std::span<const std::byte> data) {
    while (!data.empty()) {
        const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        ASSERT_GT(n, 0) << std::strerror(errno);
        data = data.subspan(static_cast<size_t>(n));
    }
}

Bytes recv_exactly(int fd, size_t n) {
    Bytes out(n);
    size_t got = 0;
    while (got < n) {
        const ssize_t r = recv(fd, out.data() + got, n - got, 0);
        EXPECT_GT(r, 0) << (r < 0 ? std::strerror(errno) : "EOF");
        if (r <= 0) {
            out.resize(got);
            return out;
        }
        got += static_cast<size_t>(r);
    }
    return out;
}

Bytes pattern(size_t n, uint8_t seed) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) {
        b[i] = static_cast<std::byte>(seed + i * 7 + i / 251);
    }
    return b;
}

Bytes to_bytes(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return Bytes(p, p + s.size());
}

// Steps `hs`, reading from `fd` while it wants input and has nothing to say.
HandshakeStep advance(int fd, Handshake& hs) {
    HandshakeStep step = hs.step();
    while (step == HandshakeStep::WantIo && hs.pending_output() == 0) {
        std::byte buf[16384];
        const ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            ADD_FAILURE() << "handshake recv: " << (n < 0 ? std::strerror(errno) : "EOF");
            return HandshakeStep::Failed;
        }
        hs.feed(std::span(buf, static_cast<size_t>(n)));
        step = hs.step();
    }
    return step;
}

Bytes take(Handshake& hs) {
    Bytes out(hs.pending_output());
    out.resize(hs.take_output(out));
    return out;
}

// Opens every complete record of `records` in place, appending application data to `out`.
void open_all(RecordLayer& rl, Bytes& records, Bytes* out) {
    std::span<std::byte> rest(records);
    while (!rest.empty()) {
        const OpenResult r = rl.open(rest);
        ASSERT_EQ(r.status, OpenStatus::Data) << (r.error != nullptr ? r.error : "need more");
        out->insert(out->end(), r.plaintext.begin(), r.plaintext.end());
        rest = rest.subspan(r.consumed);
    }
}

// One end after the handshake: its record layer (used for anything user space had to open or
// seal before the kernel took over) and what user space already received.
struct End {
    std::unique_ptr<RecordLayer> records;
    Bytes early_plaintext;
};

// Handshake over the socket pair. The client's first application record goes out in the same
// send() as its Finished, so the server may find it in leftover_input(): that record is opened
// in user space (completing a partial one from the socket first) and the RX sequence number
// handed to the kernel counts it.
void handshake(SocketPair& s, const char* suites, End* client_end, End* server_end) {
    auto server_ctx = TlsContext::create(config(true, suites));
    auto client_ctx = TlsContext::create(config(false, suites));
    ASSERT_TRUE(server_ctx.ok()) << server_ctx.status();
    ASSERT_TRUE(client_ctx.ok()) << client_ctx.status();
    Handshake server(**server_ctx);
    Handshake client(**client_ctx);

    ASSERT_EQ(advance(s.client, client), HandshakeStep::WantIo);
    send_all(s.client, take(client));
    ASSERT_EQ(advance(s.server, server), HandshakeStep::WantIo) << server.failure_reason();
    send_all(s.server, take(server));
    ASSERT_EQ(advance(s.client, client), HandshakeStep::Done) << client.failure_reason();
    client_end->records = std::make_unique<RecordLayer>(client.keys());
    Bytes flight = take(client);
    const Bytes early = to_bytes("early data");
    const size_t at = flight.size();
    flight.resize(at + sealed_size(early.size()));
    const SealResult sealed = client_end->records->seal(early, std::span(flight).subspan(at));
    ASSERT_EQ(sealed.consumed, early.size());
    send_all(s.client, flight);
    ASSERT_EQ(advance(s.server, server), HandshakeStep::Done) << server.failure_reason();
    EXPECT_EQ(server.peer_identity(), "ferry-initiator");
    EXPECT_EQ(client.peer_identity(), "ferry-terminator");

    server_end->records = std::make_unique<RecordLayer>(server.keys());
    Bytes leftover(server.leftover_input().begin(), server.leftover_input().end());
    while (const size_t more = bytes_to_record_boundary(leftover)) {
        const Bytes rest = recv_exactly(s.server, more);
        leftover.insert(leftover.end(), rest.begin(), rest.end());
    }
    open_all(*server_end->records, leftover, &server_end->early_plaintext);
    std::printf("handshake %s: %zu leftover bytes opened in user space\n",
                cipher_name(server.keys().cipher), leftover.size());
}

std::map<std::string, uint64_t> tls_stat() {
    std::map<std::string, uint64_t> stat;
    std::ifstream in("/proc/net/tls_stat");
    std::string name;
    uint64_t value = 0;
    while (in >> name >> value) {
        stat[name] = value;
    }
    return stat;
}

// ---- tests -------------------------------------------------------------------------------

TEST(KtlsLoopback, BulkDataThroughTheKernelBothWays) {
    const auto before = tls_stat();
    SocketPair s;
    End client;
    End server;
    handshake(s, kDefaultCiphersuites, &client, &server);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    ASSERT_TRUE(install_ktls(s.client, client.records->tx_keys(), client.records->rx_keys()).ok());
    ASSERT_TRUE(install_ktls(s.server, server.records->tx_keys(), server.records->rx_keys()).ok());

    // 1 MiB up: the VM emulates AES slowly, so the volume stays modest.
    const Bytes up = pattern(1 << 20, 3);
    std::thread sender([&] { send_all(s.client, up); });
    const Bytes early = to_bytes("early data");
    Bytes expected = early;
    expected.insert(expected.end(), up.begin(), up.end());
    Bytes got = server.early_plaintext;
    const Bytes rest = recv_exactly(s.server, expected.size() - got.size());
    got.insert(got.end(), rest.begin(), rest.end());
    sender.join();
    EXPECT_TRUE(got == expected) << "up: " << got.size() << " bytes";

    const Bytes down = pattern(200000, 9);
    std::thread down_sender([&] { send_all(s.server, down); });
    const Bytes received = recv_exactly(s.client, down.size());
    down_sender.join();
    EXPECT_TRUE(received == down);

    const auto after = tls_stat();
    for (const char* counter : {"TlsTxSw", "TlsRxSw"}) {
        const uint64_t was = before.count(counter) ? before.at(counter) : 0;
        EXPECT_GE(after.at(counter), was + 2) << counter;
        std::printf("%s %llu -> %llu\n", counter, static_cast<unsigned long long>(was),
                    static_cast<unsigned long long>(after.at(counter)));
    }
    EXPECT_GE(after.at("TlsCurrTxSw"), 2u);
}

// The kernel's records against ferry's user-space records, per suite: this checks the
// crypto_info layout (salt/IV split, sequence numbers) as much as both implementations.
class KtlsInterop : public ::testing::TestWithParam<const char*> {};

TEST_P(KtlsInterop, KernelAndRecordLayerReadEachOther) {
    SocketPair s;
    End client;
    End server;
    handshake(s, GetParam(), &client, &server);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    ASSERT_TRUE(install_ktls(s.client, client.records->tx_keys(), client.records->rx_keys()).ok());

    // Kernel TX -> user-space open, in place in the receive buffer.
    const Bytes up = pattern(100000, 1);
    std::thread sender([&] { send_all(s.client, up); });
    Bytes got = server.early_plaintext;
    Bytes wire;
    const size_t want = up.size() + std::string_view("early data").size();
    while (got.size() < want) {
        std::byte buf[32768];
        const ssize_t n = recv(s.server, buf, sizeof(buf), 0);
        ASSERT_GT(n, 0);
        wire.insert(wire.end(), buf, buf + n);
        size_t start = 0;
        for (;;) {
            const OpenResult r = server.records->open(std::span(wire).subspan(start));
            if (r.status == OpenStatus::NeedMore) {
                break;
            }
            ASSERT_EQ(r.status, OpenStatus::Data) << r.error;
            got.insert(got.end(), r.plaintext.begin(), r.plaintext.end());
            start += r.consumed;
        }
        wire.erase(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(start));
    }
    sender.join();
    const Bytes early = to_bytes("early data");
    EXPECT_TRUE(std::equal(early.begin(), early.end(), got.begin()));
    EXPECT_TRUE(std::equal(up.begin(), up.end(), got.begin() + static_cast<long>(early.size())));

    // User-space seal -> kernel RX.
    const Bytes down = pattern(100000, 5);
    Bytes sealed(sealed_size(down.size()));
    ASSERT_EQ(server.records->seal(down, sealed).written, sealed.size());
    std::thread down_sender([&] { send_all(s.server, sealed); });
    const Bytes received = recv_exactly(s.client, down.size());
    down_sender.join();
    EXPECT_TRUE(received == down);
}

INSTANTIATE_TEST_SUITE_P(AllSuites, KtlsInterop,
                         ::testing::Values("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                           "TLS_CHACHA20_POLY1305_SHA256"));

TEST(KtlsLoopback, AlertsArriveAsControlRecords) {
    SocketPair s;
    End client;
    End server;
    handshake(s, kDefaultCiphersuites, &client, &server);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    ASSERT_TRUE(install_ktls(s.client, client.records->tx_keys(), client.records->rx_keys()).ok());
    ASSERT_TRUE(install_ktls(s.server, server.records->tx_keys(), server.records->rx_keys()).ok());

    send_all(s.client, to_bytes("bye"));
    ASSERT_EQ(ktls_send_close_notify(s.client), 0);
    Bytes buf(16384);
    std::string data = std::string(reinterpret_cast<const char*>(server.early_plaintext.data()),
                                   server.early_plaintext.size());
    KtlsRecvResult r;
    for (;;) {
        r = ktls_recv(s.server, buf);
        ASSERT_EQ(r.err, 0) << std::strerror(r.err);
        if (r.record.kind != KtlsRecordKind::Data) {
            break;
        }
        ASSERT_GT(r.bytes, 0u) << "unexpected end of stream";
        data.append(reinterpret_cast<const char*>(buf.data()), r.bytes);
    }
    EXPECT_EQ(data, "early databye") << "data records come before the control record";
    EXPECT_EQ(r.record.kind, KtlsRecordKind::CloseNotify);
    EXPECT_EQ(r.record.record_type, 21);

    // The other direction with a fatal alert: it is named, not mistaken for data.
    const std::byte fatal[2] = {std::byte{2}, std::byte{42}};
    ASSERT_EQ(ktls_send_record(s.server, 21, fatal), 0);
    r = ktls_recv(s.client, buf);
    ASSERT_EQ(r.err, 0) << std::strerror(r.err);
    EXPECT_EQ(r.record.kind, KtlsRecordKind::Alert);
    EXPECT_EQ(r.record.alert, 42);
}

bool kernel_at_least(int major, int minor) {
    utsname u{};
    uname(&u);
    int got_major = 0;
    int got_minor = 0;
    std::sscanf(u.release, "%d.%d", &got_major, &got_minor);
    return got_major > major || (got_major == major && got_minor >= minor);
}

TEST(KtlsLoopback, PeerKeyUpdateIsReportedAndRekeyNeedsTheKernel) {
    EXPECT_EQ(ktls_rekey_supported(), kernel_at_least(6, 14));
    SocketPair s;
    End client;
    End server;
    handshake(s, kDefaultCiphersuites, &client, &server);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    ASSERT_TRUE(install_ktls(s.server, server.records->tx_keys(), server.records->rx_keys()).ok());

    // The client stays in user space and rotates its key between two records.
    Bytes wire(sealed_size(6) + kKeyUpdateRecordSize + sealed_size(5));
    size_t n = client.records->seal(to_bytes("before"), wire).written;
    n += client.records->update_tx_key(std::span(wire).subspan(n));
    n += client.records->seal(to_bytes("after"), std::span(wire).subspan(n)).written;
    ASSERT_EQ(n, wire.size());
    send_all(s.client, wire);

    Bytes buf(16384);
    std::string data = std::string(reinterpret_cast<const char*>(server.early_plaintext.data()),
                                   server.early_plaintext.size());
    KtlsRecvResult r;
    for (;;) {
        r = ktls_recv(s.server, buf);
        ASSERT_EQ(r.err, 0) << std::strerror(r.err);
        if (r.record.kind != KtlsRecordKind::Data) {
            break;
        }
        ASSERT_GT(r.bytes, 0u) << "unexpected end of stream";
        data.append(reinterpret_cast<const char*>(buf.data()), r.bytes);
    }
    EXPECT_EQ(data, "early databefore");
    ASSERT_EQ(r.record.kind, KtlsRecordKind::KeyUpdate);
    EXPECT_FALSE(r.record.update_requested);

    DirectionKeys next;
    ASSERT_TRUE(next_direction_keys(server.records->rx_keys(), &next));
    const absl::Status rekey = ktls_rekey(s.server, KtlsDirection::Rx, next);
    if (!ktls_rekey_supported()) {
        // This kernel keeps the old key: kTLS use must end on this connection.
        EXPECT_EQ(rekey.code(), absl::StatusCode::kFailedPrecondition) << rekey;
        EXPECT_THAT(std::string(rekey.message()), HasSubstr("6.14"));
        std::printf("kTLS rekey unsupported here: %s\n", std::string(rekey.message()).c_str());
        return;
    }
    ASSERT_TRUE(rekey.ok()) << rekey;
    EXPECT_TRUE(recv_exactly(s.server, 5) == to_bytes("after"));
}

}  // namespace
}  // namespace ferry::tls

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (!ferry::tls::ktls_supported()) {
        std::printf("SKIP: no kTLS on this kernel: %s\n",
                    std::string(ferry::tls::ktls_probe().message()).c_str());
        return 77;
    }
    std::printf("kTLS available; in-place rekey %s\n",
                ferry::tls::ktls_rekey_supported() ? "supported" : "unsupported (Linux < 6.14)");
    ferry::tls::g_pki =
        static_cast<ferry::tls::Pki*>(::testing::AddGlobalTestEnvironment(new ferry::tls::Pki));
    return RUN_ALL_TESTS();
}
