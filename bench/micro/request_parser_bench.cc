// HTTP/1.1 head parser on what the admin port mostly sees: a Prometheus scrape.
#include <benchmark/benchmark.h>

#include <string_view>

#include "ferry/proto/http1/request_parser.h"

namespace ferry::proto::http1 {
namespace {

constexpr std::string_view kScrape =
    "GET /metrics HTTP/1.1\r\n"
    "Host: 10.42.0.17:9090\r\n"
    "User-Agent: Prometheus/2.45.0\r\n"
    "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
    "Accept-Encoding: gzip\r\n"
    "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
    "\r\n";

void BM_RequestParserAdminGet(benchmark::State& state) {
    RequestParser parser;
    for (auto _ : state) {
        ParseResult r = parser.feed(kScrape);
        if (r.status != ParseStatus::Complete) {
            state.SkipWithError("the scrape did not parse");
            break;
        }
        benchmark::DoNotOptimize(parser.path());
        parser.reset();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kScrape.size()));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_RequestParserAdminGet);

// The same head arriving in TCP-sized pieces of 64 bytes.
void BM_RequestParserAdminGetIn64BytePieces(benchmark::State& state) {
    RequestParser parser;
    for (auto _ : state) {
        ParseResult r{};
        for (size_t off = 0; off < kScrape.size(); off += 64) {
            r = parser.feed(kScrape.substr(off, 64));
        }
        if (r.status != ParseStatus::Complete) {
            state.SkipWithError("the scrape did not parse");
            break;
        }
        benchmark::DoNotOptimize(parser.header("host"));
        parser.reset();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kScrape.size()));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_RequestParserAdminGetIn64BytePieces);

}  // namespace
}  // namespace ferry::proto::http1
