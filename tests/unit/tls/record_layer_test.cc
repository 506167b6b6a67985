#include "ferry/tls/record_layer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace ferry::tls {
namespace {

using Bytes = std::vector<std::byte>;

Bytes to_bytes(std::string_view text) {
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    return Bytes(p, p + text.size());
}

std::string to_string(std::span<const std::byte> bytes) {
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::string pattern(size_t n, char seed) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>(seed + static_cast<char>(i % 61));
    }
    return s;
}

// Client and server views of one connection's keys, from fixed secrets.
TrafficKeys keys_for(Cipher cipher, bool is_server) {
    const Bytes c2s(secret_len(cipher), std::byte{0x11});
    const Bytes s2c(secret_len(cipher), std::byte{0x22});
    TrafficKeys k;
    k.cipher = cipher;
    EXPECT_TRUE(derive_key_iv(cipher, is_server ? s2c : c2s, &k.tx));
    EXPECT_TRUE(derive_key_iv(cipher, is_server ? c2s : s2c, &k.rx));
    return k;
}

Bytes seal_all(RecordLayer& rl, std::string_view text) {
    Bytes out(sealed_size(text.size()));
    const SealResult r = rl.seal(to_bytes(text), out);
    EXPECT_EQ(r.consumed, text.size());
    EXPECT_EQ(r.written, out.size());
    return out;
}

// A receive buffer the way the tunnel session keeps one: bytes are appended as they arrive and
// records are opened in place from the front.
struct Receiver {
    explicit Receiver(const TrafficKeys& keys) : records(keys) {}

    void push(std::span<const std::byte> chunk) {
        buf.insert(buf.end(), chunk.begin(), chunk.end());
        while (!failed) {
            const OpenResult r = records.open(std::span(buf).subspan(start));
            if (r.status == OpenStatus::NeedMore) {
                EXPECT_GT(r.needed, buf.size() - start);
                EXPECT_EQ(r.consumed, 0u);
                return;
            }
            start += r.consumed;
            switch (r.status) {
                case OpenStatus::Data:
                    got += to_string(r.plaintext);
                    break;
                case OpenStatus::KeyUpdate:
                    ++key_updates;
                    break;
                case OpenStatus::Eof:
                    eof = true;
                    return;
                default:
                    ADD_FAILURE() << r.error;
                    failed = true;
                    return;
            }
        }
    }

    RecordLayer records;
    Bytes buf;
    size_t start = 0;
    std::string got;
    int key_updates = 0;
    bool eof = false;
    bool failed = false;
};

class RecordLayerCipher : public ::testing::TestWithParam<Cipher> {};

TEST_P(RecordLayerCipher, SealsAGatherListAndOpensItInPlace) {
    RecordLayer client(keys_for(GetParam(), false));
    RecordLayer server(keys_for(GetParam(), true));
    const std::string a = pattern(10, 'a');
    const std::string b = pattern(40000, 'b');
    const std::string c = pattern(5, 'c');
    const Bytes ba = to_bytes(a);
    const Bytes bb = to_bytes(b);
    const Bytes bc = to_bytes(c);
    const std::span<const std::byte> pieces[] = {ba, {}, bb, bc};
    Bytes wire(sealed_size(a.size() + b.size() + c.size()));
    const SealResult s = client.seal(pieces, wire);
    EXPECT_EQ(s.consumed, a.size() + b.size() + c.size());
    EXPECT_EQ(s.written, wire.size());
    EXPECT_EQ(client.stats().tx_records, 3u);

    std::string got;
    std::span<std::byte> rest(wire);
    while (!rest.empty()) {
        const OpenResult r = server.open(rest);
        ASSERT_EQ(r.status, OpenStatus::Data) << r.error;
        EXPECT_EQ(r.content_type, 23);
        // The plaintext lies inside the record just consumed, right after its header.
        EXPECT_EQ(r.plaintext.data(), rest.data() + kRecordHeaderLen);
        EXPECT_LE(r.plaintext.size(), kMaxRecordPlaintext);
        got += to_string(r.plaintext);
        rest = rest.subspan(r.consumed);
    }
    EXPECT_EQ(got, a + b + c);
    EXPECT_EQ(server.stats().rx_records, 3u);
    EXPECT_EQ(server.stats().rx_bytes, got.size());
}

TEST_P(RecordLayerCipher, FollowsKeyUpdatesBothWays) {
    RecordLayer client(keys_for(GetParam(), false));
    RecordLayer server(keys_for(GetParam(), true));
    Bytes wire = seal_all(client, "before");
    Bytes update(kKeyUpdateRecordSize);
    ASSERT_EQ(client.update_tx_key(update, /*request_peer_update=*/true), kKeyUpdateRecordSize);
    const Bytes after = seal_all(client, "after");
    wire.insert(wire.end(), update.begin(), update.end());
    wire.insert(wire.end(), after.begin(), after.end());
    EXPECT_EQ(client.stats().tx_rotations, 1u);
    EXPECT_EQ(client.stats().tx_records, 1u);
    EXPECT_EQ(client.tx_keys().seq, 1u);

    std::span<std::byte> rest(wire);
    OpenResult r = server.open(rest);
    ASSERT_EQ(r.status, OpenStatus::Data);
    EXPECT_EQ(to_string(r.plaintext), "before");
    rest = rest.subspan(r.consumed);
    r = server.open(rest);
    ASSERT_EQ(r.status, OpenStatus::KeyUpdate) << r.error;
    EXPECT_TRUE(r.update_requested);
    EXPECT_EQ(r.content_type, 22);
    rest = rest.subspan(r.consumed);
    r = server.open(rest);
    ASSERT_EQ(r.status, OpenStatus::Data) << r.error;
    EXPECT_EQ(to_string(r.plaintext), "after");
    EXPECT_EQ(server.stats().rx_rotations, 1u);
    EXPECT_EQ(server.stats().rx_records, 1u);

    // The server answers the request; the client follows.
    Bytes answer(kKeyUpdateRecordSize);
    ASSERT_EQ(server.update_tx_key(answer), kKeyUpdateRecordSize);
    Bytes reply = seal_all(server, "reply");
    answer.insert(answer.end(), reply.begin(), reply.end());
    r = client.open(answer);
    ASSERT_EQ(r.status, OpenStatus::KeyUpdate) << r.error;
    EXPECT_FALSE(r.update_requested);
    r = client.open(std::span(answer).subspan(r.consumed));
    ASSERT_EQ(r.status, OpenStatus::Data) << r.error;
    EXPECT_EQ(to_string(r.plaintext), "reply");
}

TEST_P(RecordLayerCipher, TamperedRecordsFailAuthentication) {
    RecordLayer sender(keys_for(GetParam(), false));
    const Bytes wire = seal_all(sender, pattern(100, 'x'));
    for (size_t i = 0; i < wire.size(); ++i) {
        for (const int flip : {0x01, 0x80}) {
            SCOPED_TRACE(::testing::Message() << "byte " << i << " flip " << flip);
            RecordLayer receiver(keys_for(GetParam(), true));
            Bytes copy = wire;
            copy[i] ^= static_cast<std::byte>(flip);
            const OpenResult r = receiver.open(copy);
            if (i == 0) {
                EXPECT_EQ(r.status, OpenStatus::Error);  // no longer application_data
            } else if (i == 3 || i == 4) {
                EXPECT_NE(r.status, OpenStatus::Data);  // length: NeedMore, or a bad tag
            } else {
                ASSERT_EQ(r.status, OpenStatus::Error);
                EXPECT_STREQ(r.error, "record authentication failed");
                EXPECT_EQ(r.alert, static_cast<uint8_t>(AlertDescription::BadRecordMac));
                EXPECT_FALSE(r.peer_alert);
            }
        }
    }
}

TEST_P(RecordLayerCipher, ReplayedOrReorderedRecordsFail) {
    RecordLayer sender(keys_for(GetParam(), false));
    RecordLayer receiver(keys_for(GetParam(), true));
    (void)seal_all(sender, "one");
    const Bytes second = seal_all(sender, "two");
    Bytes copy = second;
    EXPECT_EQ(receiver.open(copy).status, OpenStatus::Error) << "sequence 1 opened as 0";
}

INSTANTIATE_TEST_SUITE_P(AllCiphers, RecordLayerCipher,
                         ::testing::Values(Cipher::Aes128Gcm, Cipher::Aes256Gcm,
                                           Cipher::Chacha20Poly1305));

// A stream of several records of every kind the receiver handles.
Bytes mixed_stream(std::string* expected) {
    RecordLayer client(keys_for(Cipher::Aes128Gcm, false));
    Bytes wire;
    const auto append = [&](const Bytes& b) { wire.insert(wire.end(), b.begin(), b.end()); };
    const std::string texts[] = {"x", pattern(300, 'a'), pattern(1200, 'k'), pattern(40, 'z')};
    append(seal_all(client, texts[0]));
    append(seal_all(client, texts[1]));
    Bytes update(kKeyUpdateRecordSize);
    EXPECT_EQ(client.update_tx_key(update), update.size());
    append(update);
    append(seal_all(client, texts[2]));
    append(seal_all(client, texts[3]));
    Bytes close(kAlertRecordSize);
    EXPECT_EQ(client.seal_alert(AlertDescription::CloseNotify, close), close.size());
    append(close);
    *expected = texts[0] + texts[1] + texts[2] + texts[3];
    return wire;
}

TEST(RecordLayer, OpensEveryTwoWaySplitOfAMultiRecordStream) {
    std::string expected;
    const Bytes wire = mixed_stream(&expected);
    const TrafficKeys keys = keys_for(Cipher::Aes128Gcm, true);
    for (size_t split = 0; split <= wire.size(); ++split) {
        SCOPED_TRACE(::testing::Message() << "split at " << split);
        Receiver rx(keys);
        rx.push(std::span(wire).first(split));
        rx.push(std::span(wire).subspan(split));
        ASSERT_FALSE(rx.failed);
        EXPECT_EQ(rx.got, expected);
        EXPECT_EQ(rx.key_updates, 1);
        EXPECT_TRUE(rx.eof);
        EXPECT_EQ(rx.start, wire.size());
    }
}

TEST(RecordLayer, OpensAStreamFedByteByByteAndInRandomChunks) {
    std::string expected;
    const Bytes wire = mixed_stream(&expected);
    const TrafficKeys keys = keys_for(Cipher::Aes128Gcm, true);
    {
        Receiver rx(keys);
        for (size_t i = 0; i < wire.size(); ++i) {
            rx.push(std::span(wire).subspan(i, 1));
        }
        EXPECT_EQ(rx.got, expected);
        EXPECT_TRUE(rx.eof);
    }
    std::mt19937 rng(42);
    for (int trial = 0; trial < 200; ++trial) {
        Receiver rx(keys);
        for (size_t at = 0; at < wire.size();) {
            const size_t n = std::min<size_t>(wire.size() - at, 1 + rng() % 700);
            rx.push(std::span(wire).subspan(at, n));
            at += n;
        }
        ASSERT_EQ(rx.got, expected);
        EXPECT_TRUE(rx.eof);
    }
}

TEST(RecordLayer, CloseNotifyIsCleanEof) {
    RecordLayer client(keys_for(Cipher::Aes256Gcm, false));
    RecordLayer server(keys_for(Cipher::Aes256Gcm, true));
    Bytes close(kAlertRecordSize);
    ASSERT_EQ(client.seal_alert(AlertDescription::CloseNotify, close), kAlertRecordSize);
    const OpenResult r = server.open(close);
    EXPECT_EQ(r.status, OpenStatus::Eof);
    EXPECT_EQ(r.consumed, kAlertRecordSize);
    EXPECT_EQ(r.content_type, 21);
}

TEST(RecordLayer, OtherAlertsAreErrorsNamedAfterTheAlert) {
    RecordLayer client(keys_for(Cipher::Aes128Gcm, false));
    RecordLayer server(keys_for(Cipher::Aes128Gcm, true));
    Bytes alert(kAlertRecordSize);
    ASSERT_EQ(client.seal_alert(AlertDescription::InternalError, alert), kAlertRecordSize);
    const OpenResult r = server.open(alert);
    ASSERT_EQ(r.status, OpenStatus::Error);
    EXPECT_STREQ(r.error, "peer sent alert internal_error");
    EXPECT_TRUE(r.peer_alert);
    EXPECT_EQ(r.alert, 80);
}

TEST(RecordLayer, RejectsMalformedOuterRecords) {
    RecordLayer rl(keys_for(Cipher::Aes128Gcm, true));
    Bytes handshake = {std::byte{22}, std::byte{3}, std::byte{3}, std::byte{0}, std::byte{40}};
    EXPECT_EQ(rl.open(handshake).status, OpenStatus::Error);
    Bytes huge = {std::byte{23}, std::byte{3}, std::byte{3}, std::byte{0x41}, std::byte{0x01}};
    OpenResult r = rl.open(huge);
    ASSERT_EQ(r.status, OpenStatus::Error);
    EXPECT_STREQ(r.error, "record overflow");
    // Within the ciphertext limit but more inner plaintext than 2^14 + 1 (RFC 8446 §5.4).
    Bytes inner = {std::byte{23}, std::byte{3}, std::byte{3}, std::byte{0x40}, std::byte{0x12}};
    r = rl.open(inner);
    ASSERT_EQ(r.status, OpenStatus::Error);
    EXPECT_STREQ(r.error, "record overflow");
    Bytes tiny = {std::byte{23}, std::byte{3}, std::byte{3}, std::byte{0}, std::byte{16}};
    r = rl.open(tiny);
    ASSERT_EQ(r.status, OpenStatus::Error);
    EXPECT_STREQ(r.error, "record too short");
    Bytes header_only = {std::byte{23}, std::byte{3}, std::byte{3}};
    r = rl.open(header_only);
    EXPECT_EQ(r.status, OpenStatus::NeedMore);
    EXPECT_EQ(r.needed, kRecordHeaderLen);
}

TEST(RecordLayer, SealFillsOnlyTheRoomItHas) {
    RecordLayer client(keys_for(Cipher::Aes128Gcm, false));
    RecordLayer server(keys_for(Cipher::Aes128Gcm, true));
    const std::string text = pattern(50000, 'q');
    const Bytes plain = to_bytes(text);
    std::string got;
    size_t done = 0;
    while (done < plain.size()) {
        Bytes out(10000);  // less than one full record
        const SealResult s = client.seal(std::span(plain).subspan(done), out);
        ASSERT_GT(s.consumed, 0u);
        EXPECT_EQ(s.written, s.consumed + kRecordOverhead);
        done += s.consumed;
        const OpenResult r = server.open(std::span(out).first(s.written));
        ASSERT_EQ(r.status, OpenStatus::Data) << r.error;
        got += to_string(r.plaintext);
    }
    EXPECT_EQ(got, text);
    Bytes cramped(kRecordOverhead);
    EXPECT_EQ(client.seal(plain, cramped).written, 0u) << "no room for even one byte";
}

TEST(RecordLayer, RecordSizeFindsBoundaries) {
    RecordLayer client(keys_for(Cipher::Aes128Gcm, false));
    const Bytes wire = seal_all(client, pattern(20000, 'r'));
    EXPECT_EQ(record_size(std::span(wire).first(4)), 0u);
    const size_t first = record_size(wire);
    EXPECT_EQ(first, kMaxRecordPlaintext + kRecordOverhead);
    EXPECT_EQ(record_size(std::span(wire).subspan(first)), wire.size() - first);
    EXPECT_EQ(sealed_size(0), 0u);
    EXPECT_EQ(sealed_size(1), 1 + kRecordOverhead);
    EXPECT_EQ(sealed_size(kMaxRecordPlaintext + 1), kMaxRecordPlaintext + 1 + 2 * kRecordOverhead);
}

TEST(RecordLayer, CountsTheBytesUpToTheNextRecordBoundary) {
    RecordLayer client(keys_for(Cipher::Aes128Gcm, false));
    Bytes wire = seal_all(client, "first");
    const Bytes second = seal_all(client, "second");
    wire.insert(wire.end(), second.begin(), second.end());
    const size_t first_size = record_size(wire);
    EXPECT_EQ(bytes_to_record_boundary({}), 0u);
    EXPECT_EQ(bytes_to_record_boundary(wire), 0u);
    EXPECT_EQ(bytes_to_record_boundary(std::span(wire).first(first_size)), 0u);
    EXPECT_EQ(bytes_to_record_boundary(std::span(wire).first(2)), 3u) << "header first";
    EXPECT_EQ(bytes_to_record_boundary(std::span(wire).first(first_size + 7)), second.size() - 7);
}

TEST(RecordLayer, ContinuesFromTheHandshakeSequenceNumbers) {
    TrafficKeys sk = keys_for(Cipher::Aes128Gcm, true);
    TrafficKeys ck = keys_for(Cipher::Aes128Gcm, false);
    ck.tx.seq = 5;
    sk.rx.seq = 5;
    RecordLayer client(ck);
    RecordLayer server(sk);
    Bytes wire = seal_all(client, "six");
    const OpenResult r = server.open(wire);
    ASSERT_EQ(r.status, OpenStatus::Data) << r.error;
    EXPECT_EQ(server.rx_keys().seq, 6u);
}

}  // namespace
}  // namespace ferry::tls
