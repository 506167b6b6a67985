// User-space TLS records: seal and open throughput per cipher and record size, to compare with
// `openssl speed -evp` and see what the per-record EVP calls cost on top of the AEAD itself.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ferry/tls/key_schedule.h"
#include "ferry/tls/record_layer.h"

namespace ferry::tls {
namespace {

TrafficKeys keys_for(Cipher cipher, bool is_server) {
    const std::vector<std::byte> c2s(secret_len(cipher), std::byte{0x11});
    const std::vector<std::byte> s2c(secret_len(cipher), std::byte{0x22});
    TrafficKeys k;
    k.cipher = cipher;
    (void)derive_key_iv(cipher, is_server ? s2c : c2s, &k.tx);
    (void)derive_key_iv(cipher, is_server ? c2s : s2c, &k.rx);
    return k;
}

// Seals 64 KiB of plaintext (one pool buffer's worth) into records of range(1) bytes.
void BM_Seal(benchmark::State& state) {
    const auto cipher = static_cast<Cipher>(state.range(0));
    const auto record = static_cast<size_t>(state.range(1));
    RecordLayer rl(keys_for(cipher, false));
    std::vector<std::byte> plain(65536, std::byte{0x5a});
    std::vector<std::byte> out(plain.size() + (plain.size() / record + 1) * kRecordOverhead);
    for (auto _ : state) {
        size_t done = 0;
        size_t written = 0;
        while (done < plain.size()) {
            const std::span<const std::byte> piece(plain.data() + done,
                                                   std::min(record, plain.size() - done));
            const SealResult r = rl.seal({&piece, 1}, std::span(out).subspan(written));
            done += r.consumed;
            written += r.written;
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(plain.size()));
}

// Opens records of range(1) plaintext bytes in place; the ciphertext is restored from a copy
// before each batch (its cost shown separately by BM_Copy), since opening decrypts in place.
void BM_Open(benchmark::State& state) {
    const auto cipher = static_cast<Cipher>(state.range(0));
    const auto record = static_cast<size_t>(state.range(1));
    RecordLayer sealer(keys_for(cipher, false));
    std::vector<std::byte> plain(65536, std::byte{0x5a});
    std::vector<std::byte> sealed(plain.size() + (plain.size() / record + 1) * kRecordOverhead);
    size_t sealed_len = 0;
    for (size_t done = 0; done < plain.size(); done += record) {
        const std::span<const std::byte> piece(plain.data() + done, record);
        sealed_len += sealer.seal({&piece, 1}, std::span(sealed).subspan(sealed_len)).written;
    }
    std::vector<std::byte> work(sealed_len);
    for (auto _ : state) {
        state.PauseTiming();
        // A fresh receiver per batch: the sequence numbers restart with the copied records.
        RecordLayer rl(keys_for(cipher, true));
        std::copy(sealed.begin(), sealed.begin() + static_cast<ptrdiff_t>(sealed_len),
                  work.begin());
        state.ResumeTiming();
        size_t at = 0;
        while (at < sealed_len) {
            const OpenResult r = rl.open(std::span(work).subspan(at));
            if (r.status != OpenStatus::Data) {
                state.SkipWithError("open failed");
                return;
            }
            at += r.consumed;
        }
        benchmark::DoNotOptimize(work.data());
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(plain.size()));
}

void Args(benchmark::internal::Benchmark* b) {
    for (Cipher c : {Cipher::Aes128Gcm, Cipher::Aes256Gcm, Cipher::Chacha20Poly1305}) {
        for (int64_t size : {1024, 4096, 16384}) {
            b->Args({static_cast<int64_t>(c), size});
        }
    }
    b->ArgNames({"cipher", "record"});
}

BENCHMARK(BM_Seal)->Apply(Args);
BENCHMARK(BM_Open)->Apply(Args);

}  // namespace
}  // namespace ferry::tls
