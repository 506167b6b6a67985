// A real gRPC C++ client (Debian's libgrpc++, no code of ours in its HTTP/2 or gRPC stack) for
// ferry's end-to-end tests: it calls service ferry.test.Echo of grpc_echo_server.py through a
// ferry initiator and checks every answer. Messages are raw bytes, so it uses grpc::GenericStub
// and needs no generated code; on the wire these are ordinary gRPC calls.
//
//   grpc_cpp_client TARGET EXPECTED_TRAIL [CA_FILE]
//
// With CA_FILE it speaks TLS (ALPN h2) and checks the server's certificate against it.
// Prints one line per case and exits 0 when every case passed. Built with exceptions and RTTI,
// which gRPC C++ expects, unlike ferry itself.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::system_clock;

grpc::ByteBuffer to_buffer(const std::string& s) {
    grpc::Slice slice(s);
    return grpc::ByteBuffer(&slice, 1);
}

std::string to_string(const grpc::ByteBuffer& b) {
    std::vector<grpc::Slice> slices;
    (void)b.Dump(&slices);
    std::string out;
    for (const grpc::Slice& s : slices) {
        out.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return out;
}

struct CallResult {
    grpc::Status status;
    std::vector<std::string> responses;
    std::multimap<std::string, std::string> initial;
    std::multimap<std::string, std::string> trailing;
};

// One call of any shape on the wire: writes `requests`, half-closes, reads every response,
// then the status. `configure` sets metadata and the deadline.
template <typename Configure>
CallResult call(grpc::GenericStub& stub, const std::string& method,
                const std::vector<std::string>& requests, Configure configure) {
    grpc::ClientContext ctx;
    configure(ctx);
    grpc::CompletionQueue cq;
    CallResult r;
    void* tag = nullptr;
    bool ok = false;
    auto step = [&](intptr_t want) {
        return cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) == want && ok;
    };
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> rw = stub.PrepareCall(&ctx, method, &cq);
    rw->StartCall(reinterpret_cast<void*>(1));
    bool alive = step(1);
    for (size_t i = 0; alive && i < requests.size(); ++i) {
        rw->Write(to_buffer(requests[i]), reinterpret_cast<void*>(2));
        alive = step(2);
    }
    if (alive) {
        rw->WritesDone(reinterpret_cast<void*>(3));
        alive = step(3);
    }
    while (alive) {
        grpc::ByteBuffer got;
        rw->Read(&got, reinterpret_cast<void*>(4));
        if (!step(4)) {
            break;
        }
        r.responses.push_back(to_string(got));
    }
    rw->Finish(&r.status, reinterpret_cast<void*>(5));
    while (cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) != 5) {
    }
    for (const auto& [k, v] : ctx.GetServerInitialMetadata()) {
        r.initial.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
        r.trailing.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    return r;
}

CallResult call(grpc::GenericStub& stub, const std::string& method,
                const std::vector<std::string>& requests) {
    return call(stub, method, requests, [](grpc::ClientContext& ctx) {
        ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
    });
}

std::string get(const std::multimap<std::string, std::string>& md, const std::string& key) {
    auto it = md.find(key);
    return it == md.end() ? std::string("<none>") : it->second;
}

int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
    std::fflush(stdout);
    failures += ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: %s TARGET EXPECTED_TRAIL [CA_FILE]\n", argv[0]);
        return 2;
    }
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (argc == 4) {
        std::ifstream in(argv[3]);
        std::stringstream pem;
        pem << in.rdbuf();
        grpc::SslCredentialsOptions ssl;
        ssl.pem_root_certs = pem.str();
        credentials = grpc::SslCredentials(ssl);
    }
    const std::string expected_trail = argv[2];
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(argv[1], credentials, args);
    if (!channel->WaitForConnected(Clock::now() + std::chrono::seconds(20))) {
        std::fprintf(stderr, "FAIL no connection to %s\n", argv[1]);
        return 1;
    }
    grpc::GenericStub stub(channel);

    // Unary: 0 B, 1 KiB, 4 MiB; text and -bin metadata both ways; the trail of both hops.
    const std::string binary(
        "\x00\xff\x10"
        "binary",
        9);
    for (size_t size : {size_t{0}, size_t{1024}, size_t{4} << 20}) {
        std::string payload(size, '\0');
        for (size_t i = 0; i < size; ++i) {
            payload[i] = static_cast<char>((i * 131 + 7) & 0xff);
        }
        CallResult r = call(stub, "/ferry.test.Echo/Unary", {payload}, [&](grpc::ClientContext& c) {
            c.set_deadline(Clock::now() + std::chrono::seconds(60));
            c.AddMetadata("x-echo-text", "hello");
            c.AddMetadata("x-echo-bin", binary);
        });
        check(r.status.ok() && r.responses.size() == 1 && r.responses[0] == payload,
              "unary " + std::to_string(size) + " B echoed: " + r.status.error_message());
        check(get(r.initial, "x-echo-text") == "hello" && get(r.initial, "x-echo-bin") == binary &&
                  get(r.trailing, "x-echo-text") == "hello" &&
                  get(r.trailing, "x-echo-bin") == binary,
              "unary metadata and -bin metadata in headers and trailers");
        check(get(r.trailing, "x-seen-trail") == expected_trail,
              "trail seen by the server: " + get(r.trailing, "x-seen-trail"));
    }

    // Server streaming: 1,000 messages in order.
    {
        CallResult r = call(stub, "/ferry.test.Echo/ServerStream", {"1000"});
        bool in_order = r.responses.size() == 1000;
        for (size_t i = 0; in_order && i < r.responses.size(); ++i) {
            in_order = r.responses[i] == "m" + std::to_string(i);
        }
        check(r.status.ok() && in_order, "server streaming: 1000 messages in order, got " +
                                             std::to_string(r.responses.size()));
    }
    // Client streaming: 1,000 messages counted by the server.
    {
        std::vector<std::string> requests;
        size_t bytes = 0;
        for (int i = 0; i < 1000; ++i) {
            requests.push_back("c" + std::to_string(i));
            bytes += requests.back().size();
        }
        CallResult r = call(stub, "/ferry.test.Echo/ClientStream", requests);
        const std::string want = "1000," + std::to_string(bytes);
        check(r.status.ok() && r.responses.size() == 1 && r.responses[0] == want,
              "client streaming: the server counted " +
                  (r.responses.empty() ? std::string("nothing") : r.responses[0]));
    }
    // Bidi: 1,000 messages each way, echoed in order.
    {
        std::vector<std::string> requests;
        for (int i = 0; i < 1000; ++i) {
            requests.push_back("bidi message " + std::to_string(i));
        }
        CallResult r = call(stub, "/ferry.test.Echo/Bidi", requests);
        check(r.status.ok() && r.responses == requests, "bidi: 1000 messages each way in order");
    }
    // The server's status and message come back as sent.
    {
        CallResult r = call(stub, "/ferry.test.Echo/Fail", {"NOT_FOUND:no such order 42"});
        check(r.status.error_code() == grpc::StatusCode::NOT_FOUND &&
                  r.status.error_message() == "no such order 42",
              "status NOT_FOUND with its message: " + r.status.error_message());
    }
    // UNIMPLEMENTED from the server for a method it lacks.
    {
        CallResult r = call(stub, "/ferry.test.Echo/NoSuchMethod", {"x"});
        check(r.status.error_code() == grpc::StatusCode::UNIMPLEMENTED,
              "UNIMPLEMENTED from the server: " + std::to_string(r.status.error_code()));
    }
    // A deadline shorter than the server's sleep.
    {
        CallResult r = call(stub, "/ferry.test.Echo/Sleep", {"3000"}, [](grpc::ClientContext& c) {
            c.set_deadline(Clock::now() + std::chrono::milliseconds(300));
        });
        check(r.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED,
              "DEADLINE_EXCEEDED: " + std::to_string(r.status.error_code()));
    }
    // A cancellation the server sees.
    {
        const CallResult before = call(stub, "/ferry.test.Echo/Cancelled", {""});
        const std::string before_text = before.responses.empty() ? "0" : before.responses[0];
        grpc::ClientContext ctx;
        ctx.set_deadline(Clock::now() + std::chrono::seconds(30));
        grpc::CompletionQueue cq;
        void* tag = nullptr;
        bool ok = false;
        auto rw = stub.PrepareCall(&ctx, "/ferry.test.Echo/Hang", &cq);
        rw->StartCall(reinterpret_cast<void*>(1));
        (void)cq.Next(&tag, &ok);
        rw->Write(to_buffer("wait"), reinterpret_cast<void*>(2));
        (void)cq.Next(&tag, &ok);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        ctx.TryCancel();
        grpc::Status status;
        rw->Finish(&status, reinterpret_cast<void*>(3));
        while (cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) != 3) {
        }
        cq.Shutdown();
        while (cq.Next(&tag, &ok)) {
        }
        bool seen = false;
        for (int i = 0; i < 100 && !seen; ++i) {
            CallResult n = call(stub, "/ferry.test.Echo/Cancelled", {""});
            seen = !n.responses.empty() &&
                   std::atoi(n.responses[0].c_str()) > std::atoi(before_text.c_str());
            if (!seen) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
        }
        check(status.error_code() == grpc::StatusCode::CANCELLED && seen,
              "a cancelled call is seen cancelled by the server");
    }
    // 1,000 unary calls in flight at once on one channel.
    {
        constexpr int kCalls = 1000;
        grpc::CompletionQueue cq;
        struct Pending {
            grpc::ClientContext ctx;
            grpc::ByteBuffer reply;
            grpc::Status status;
            std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
        };
        std::vector<std::unique_ptr<Pending>> calls;
        for (int i = 0; i < kCalls; ++i) {
            auto p = std::make_unique<Pending>();
            p->ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
            p->reader = stub.PrepareUnaryCall(&p->ctx, "/ferry.test.Echo/Unary",
                                              to_buffer("call " + std::to_string(i)), &cq);
            p->reader->StartCall();
            p->reader->Finish(&p->reply, &p->status, p.get());
            calls.push_back(std::move(p));
        }
        int good = 0;
        void* tag = nullptr;
        bool ok = false;
        for (int n = 0; n < kCalls && cq.Next(&tag, &ok); ++n) {
            auto* p = static_cast<Pending*>(tag);
            good += ok && p->status.ok() && to_string(p->reply).rfind("call ", 0) == 0 ? 1 : 0;
        }
        cq.Shutdown();
        while (cq.Next(&tag, &ok)) {
        }
        check(good == kCalls, "1000 concurrent unary calls: " + std::to_string(good) + " ok");
    }
    std::printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
    return failures == 0 ? 0 : 1;
}
