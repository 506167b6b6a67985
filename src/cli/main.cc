// ferry: command line entry. `ferry initiator|terminator [flags]`; `ferry --help`.
//
// Flags are Abseil flags. Parsing walks argv itself through absl's flag reflection so every bad
// value ends in one line on stderr and exit code 2 (absl's own parser exits 1).
#include <openssl/crypto.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "ferry/admin/admin_server.h"
#include "ferry/base/byte_size.h"
#include "ferry/base/log.h"
#include "ferry/config/options.h"
#include "ferry/io/node_check.h"
#include "ferry/role/initiator.h"
#include "ferry/role/limits.h"
#include "ferry/role/metrics.h"
#include "ferry/role/terminator.h"
#include "ferry/shard/runtime.h"
#include "ferry/tls/ktls.h"
#include "version.h"

// clang-format off
ABSL_FLAG(int, shards, 0, "Shards (pinned threads, one io_uring each); 0 = one per CPU in --cpus");
ABSL_FLAG(std::string, cpus, "auto", "CPUs to pin shards to: auto (the affinity mask), none, or a list like 0,2-3");
ABSL_FLAG(uint32_t, ring_entries, 4096, "io_uring submission queue entries per shard (power of two)");
ABSL_FLAG(bool, sqpoll, false, "Use an SQPOLL kernel thread per shard (trades a busy core for fewer syscalls)");
ABSL_FLAG(ferry::base::ByteSize, buffer_size, {64 << 10}, "Bytes per pooled buffer (one receive lands in one buffer; at least 16384 with TLS)");
ABSL_FLAG(uint32_t, buffer_count, 512, "Pooled buffers per shard for client/upstream sockets (memory bound: size x count; untouched ones cost nothing)");
ABSL_FLAG(uint32_t, tunnel_buffer_count, 1024, "Pooled buffers per shard for tunnel connections (their own pool, so local backlog never starves the tunnel)");
ABSL_FLAG(ferry::base::ByteSize, zerocopy_threshold, {64 << 10}, "Tunnel writes of at least this many bytes use SEND_ZC; 0 = never");
ABSL_FLAG(ferry::base::ByteSize, max_frame_size, {64 << 10}, "Largest tunnel frame payload this side accepts (16384 .. 16 MiB)");
ABSL_FLAG(absl::Duration, ws_ping_interval, absl::ZeroDuration(), "initiator: send each open WebSocket client a Ping this often (keepalive through middleboxes); 0 = off");
ABSL_FLAG(absl::Duration, ws_idle_timeout, absl::ZeroDuration(), "initiator: close (1001) a WebSocket client that sends nothing, not even a Pong, this long; 0 = off");
ABSL_FLAG(std::string, ws_allowed_origins, "", "initiator: comma-separated Origins a WebSocket upgrade may carry (others get 403); empty = any; a request without Origin (not a browser) is allowed");
ABSL_FLAG(ferry::base::ByteSize, grpc_max_message, {4 << 20}, "Largest gRPC message taken from a client or the far side (initiator), or collected by the built-in sink (terminator); a larger one ends its call with RESOURCE_EXHAUSTED (1 .. 1 GiB)");
ABSL_FLAG(ferry::base::ByteSize, ws_max_message, {16 << 20}, "Largest WebSocket message taken from a client (initiator), or collected by the built-in sink or taken from a ws upstream (terminator), over all its frames; larger ones close the connection with 1009 (1 .. 1 GiB)");
ABSL_FLAG(ferry::base::ByteSize, stream_window, {256 << 10}, "Per-stream flow-control window in bytes");
ABSL_FLAG(ferry::base::ByteSize, connection_window, {16 << 20}, "Per-tunnel-connection flow-control window in bytes");
ABSL_FLAG(uint32_t, max_connections, 65536, "Most local connections of this process, all shards together (clients at the initiator, upstreams at the terminator)");
ABSL_FLAG(uint32_t, max_tunnels, 1024, "terminator: most established tunnel connections per shard");
ABSL_FLAG(uint32_t, max_pending_tunnels, 256, "terminator: most tunnel connections per shard whose TLS handshake and HELLO are not done; when full the oldest is closed, so a real initiator always gets in");
ABSL_FLAG(std::string, tunnel_placement, "balanced", "terminator: which shard serves an accepted tunnel connection: balanced (the one with the fewest), kernel (where SO_REUSEPORT put it) or rotate (always hand to the next shard; for tests)");
ABSL_FLAG(std::string, hooks, "", "A hooks library (shared object, C ABI of include/ferry/hooks.h): on_trigger at the initiator, on_receive_terminator at the sink; hooks run on the shards and must not block");
ABSL_FLAG(uint32_t, auto_trigger, 5, "initiator: messages sent through the tunnel to the terminator's sink once the tunnel is first up (0 = off); results on GET /output");
ABSL_FLAG(std::string, blueprint, "ws", "initiator: what a triggered message (auto-trigger, POST /trigger) is: ws (Fast International Ferry: one WebSocket message to the terminator's sink) or grpc (International Ferry: one lane7 Send call, proto/lane7.proto)");
ABSL_FLAG(absl::Duration, trigger_timeout, absl::Seconds(10), "initiator: how long a triggered message (auto-trigger, POST /trigger) waits for its reply");
ABSL_FLAG(std::string, tunnels_per_peer, "auto", "initiator: tunnel connections each shard keeps to each peer: auto (enough for every terminator shard to carry a share, from its HELLO) or 1..64");
ABSL_FLAG(absl::Duration, handshake_timeout, absl::Seconds(10), "A tunnel connection must finish its TLS handshake and HELLO within this (both roles)");
ABSL_FLAG(uint32_t, max_upstream_connects, 1024, "terminator: most upstream connects in flight in this process");
ABSL_FLAG(uint32_t, max_upstream_connects_per_tunnel, 256, "terminator: most upstream connects in flight per tunnel connection");
ABSL_FLAG(absl::Duration, admin_timeout, absl::Seconds(5), "Admin port: a connection must send its request within this");
ABSL_FLAG(std::string, log_level_file, "", "A file holding the log level (debug, info, ...), read at start and on SIGHUP; overrides --log-level");
ABSL_FLAG(uint32_t, max_streams, 16384, "Most concurrent streams per tunnel connection");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(5), "Timeout of tunnel and upstream connects");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10), "On SIGTERM/SIGINT, how long streams may take to finish");
ABSL_FLAG(absl::Duration, ping_interval, absl::Seconds(10), "Tunnel PING interval (RTT and liveness)");
ABSL_FLAG(absl::Duration, ping_timeout, absl::Seconds(30), "Close a tunnel connection whose PING is unanswered this long");
ABSL_FLAG(int64_t, peer_failure_threshold, 3, "A peer that misses this many ping intervals in a row is gone: its tunnel closes (streams reset as retryable: WebSocket 1012, gRPC UNAVAILABLE), its routing keys move to their next choice, and it is redialed with backoff; 0 = only --ping-timeout");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn, error or off");
ABSL_FLAG(std::string, log_format, "text", "text, or json: one object per line with ts, level, shard and msg");
ABSL_FLAG(std::vector<std::string>, listen, {}, "initiator, repeatable: where clients connect, HOST:PORT or tcp://HOST:PORT (ws://, wss://, grpc://, grpcs:// listeners come with their protocols)");
ABSL_FLAG(std::string, peer_dns, "", "initiator: NAME:PORT of a headless Service whose A/AAAA records are the terminators (beside any --peer); re-resolved every --dns-refresh off the data path: new addresses are dialed, vanished ones drain, streams to the others are not touched");
ABSL_FLAG(absl::Duration, dns_refresh, absl::Seconds(30), "initiator: how often --peer-dns is resolved again");
ABSL_FLAG(std::string, dns_server, "", "initiator: IP[:PORT],... the DNS servers for --peer-dns (default: /etc/resolv.conf)");
ABSL_FLAG(std::vector<std::string>, peer_weights, {}, "initiator: ADDR=WEIGHT,... a --peer's share of the routing keys relative to the others (default 1 each), e.g. 10.0.0.5:7443=3");
ABSL_FLAG(std::vector<std::string>, upstream_weights, {}, "terminator: ADDR=WEIGHT,... an --upstream's share of its protocol's routing keys (default 1 each)");
ABSL_FLAG(std::vector<std::string>, peer, {}, "initiator, repeatable: a terminator's tunnel address (its LoadBalancer IP:port); each new stream goes to the one its routing key picks (rendezvous hashing) among those with a usable tunnel");
ABSL_FLAG(std::string, route_key, "header:X-Routing-Key", "initiator: a client's routing key, which picks its terminator and travels in OPEN: header:NAME or query:NAME of a WebSocket Upgrade request, or client-address; a client without that header or parameter, and every TCP client, is keyed by its address");
ABSL_FLAG(std::string, listen_tunnel, "", "terminator: address the tunnel listens on (host:port)");
ABSL_FLAG(std::vector<std::string>, upstream, {}, "terminator, repeatable: where streams go (several tcp:// ones share the streams by the OPEN's routing key, rendezvous hashing; one ws://), HOST:PORT or tcp://HOST:PORT, ws://HOST:PORT[/PATH] for WebSocket streams, grpc://HOST:PORT or grpcs://HOST:PORT for gRPC streams (without one, the built-in sinks answer them)");
ABSL_FLAG(std::string, admin, "", "Admin HTTP address for /health, /ready, /metrics (empty = off)");
ABSL_FLAG(std::string, node_name, "", "Name of this hop in trails and logs (default: $POD_NAME, else the host name)");
ABSL_FLAG(std::string, tunnel_transport, "tls", "Tunnel transport: tls (mutual TLS 1.3, the default), ws (the same mutual TLS 1.3 inside one WebSocket per tunnel connection, for networks that pass only HTTP), grpc (the same inside one bidirectional gRPC stream per tunnel connection, h2c, for networks that pass only gRPC / HTTP/2) or plain (trusted networks, tests)");
ABSL_FLAG(std::string, tunnel_grpc_path, "/ferry.tunnel.v1.Tunnel/Carry", "--tunnel-transport=grpc: the :path of the tunnel's gRPC call (initiator calls it, terminator accepts only it)");
ABSL_FLAG(std::string, tunnel_ws_path, "/ferry/tunnel", "--tunnel-transport=ws: the path of the tunnel's WebSocket Upgrade (initiator asks for it, terminator accepts only it)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain of this side (tools/gen-certs.sh makes a demo set)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, listen_tls_cert, "", "initiator: PEM certificate chain that wss:// and grpcs:// listeners show to clients (TLS 1.3, ALPN http/1.1 and h2; no client certificate asked)");
ABSL_FLAG(std::string, upstream_tls_ca, "", "terminator: PEM CA bundle a grpcs:// upstream's certificate must chain to (empty: the system's trust store); the certificate must name the URL's host, which also goes in SNI");
ABSL_FLAG(std::string, listen_tls_key, "", "initiator: PEM private key of --listen-tls-cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle the peer's certificate must chain to");
ABSL_FLAG(std::string, peer_name, "ferry-terminator", "initiator: name (DNS SAN) the terminator's certificate must carry");
ABSL_FLAG(std::string, allowed_peers, "", "terminator: comma-separated initiator identities (SAN or CN) to accept; empty = any the CA signed");
ABSL_FLAG(std::string, tls_ciphers, "", "TLS 1.3 cipher suites in preference order (default AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305)");
ABSL_FLAG(std::string, ktls, "auto", "Kernel TLS offload: auto (when the kernel has it), on (fail without it), off");
ABSL_FLAG(ferry::base::ByteSize, rekey_bytes, {1ULL << 30}, "Rotate a tunnel connection's sending key after this many bytes; 0 = never by bytes");
ABSL_FLAG(absl::Duration, rekey_interval, absl::Minutes(10), "Rotate a tunnel connection's keys at least this often; 0 = never by age");
// clang-format on

namespace {

// Flags that may be given several times: each occurrence adds one value (commas are kept, so a
// URL with a comma in its query stays whole).
constexpr std::string_view kRepeatable[] = {"listen", "peer", "upstream"};

constexpr const char* kUsage =
    "usage: ferry <initiator|terminator> [flags]\n"
    "       ferry --version\n"
    "\n"
    "  ferry terminator --listen-tunnel 0.0.0.0:7443 --upstream 127.0.0.1:8080 --admin :9901\n"
    "  ferry initiator  --listen 0.0.0.0:9000 --peer 203.0.113.7:7443 --admin :9900\n"
    "\n"
    "Flags (--name=value or --name value; booleans also --name / --noname):\n";

void print_help() {
    std::fputs(kUsage, stdout);
    std::vector<const absl::CommandLineFlag*> flags;
    for (const auto& [name, flag] : absl::GetAllFlags()) {
        if (std::string_view(flag->Filename()).find("src/cli/") != std::string_view::npos) {
            flags.push_back(flag);
        }
    }
    std::sort(flags.begin(), flags.end(),
              [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
    for (const absl::CommandLineFlag* f : flags) {
        std::string name(f->Name());
        std::replace(name.begin(), name.end(), '_', '-');
        std::printf("  --%-20s %s (default: %s)\n", name.c_str(), f->Help().c_str(),
                    f->DefaultValue().empty() ? "\"\"" : f->DefaultValue().c_str());
    }
}

void print_version() {
    utsname uts{};
    uname(&uts);
    std::printf("ferry %s\n", FERRY_VERSION);
    std::printf("%s; Linux %s, kernel TLS %s\n", OpenSSL_version(OPENSSL_VERSION), uts.release,
                ferry::tls::ktls_supported() ? "available" : "not available");
}

[[noreturn]] void usage_error(const std::string& message) {
    std::fprintf(stderr, "ferry: %s (see ferry --help)\n", message.c_str());
    std::exit(2);
}

// Parses argv[first..] as flags; returns positional arguments.
std::vector<std::string> parse_flags(int argc, char** argv, int first) {
    std::vector<std::string> positional;
    std::vector<std::pair<absl::CommandLineFlag*, std::vector<std::string>>> repeated;
    for (int i = first; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h" || arg == "help") {
            print_help();
            std::exit(0);
        }
        if (arg == "--version" || arg == "-V" || arg == "version") {
            print_version();
            std::exit(0);
        }
        if (arg.size() < 3 || arg.substr(0, 2) != "--") {
            positional.emplace_back(arg);
            continue;
        }
        arg.remove_prefix(2);
        std::string name;
        std::string value;
        bool has_value = false;
        if (size_t eq = arg.find('='); eq != std::string_view::npos) {
            name = std::string(arg.substr(0, eq));
            value = std::string(arg.substr(eq + 1));
            has_value = true;
        } else {
            name = std::string(arg);
        }
        std::replace(name.begin(), name.end(), '-', '_');
        absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
        bool negated = false;
        if (flag == nullptr && name.rfind("no", 0) == 0) {
            flag = absl::FindCommandLineFlag(name.substr(2));
            negated = flag != nullptr;
        }
        if (flag == nullptr) {
            usage_error(absl::StrFormat("unknown flag --%s", arg.substr(0, arg.find('='))));
        }
        bool is_bool = flag->IsOfType<bool>();
        if (!has_value) {
            if (is_bool) {
                value = negated ? "false" : "true";
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                usage_error(absl::StrFormat("--%s needs a value", arg));
            }
        }
        if (std::find(std::begin(kRepeatable), std::end(kRepeatable), name) !=
            std::end(kRepeatable)) {
            auto it = std::find_if(repeated.begin(), repeated.end(),
                                   [&](const auto& r) { return r.first == flag; });
            if (it == repeated.end()) {
                repeated.push_back({flag, {}});
                it = repeated.end() - 1;
            }
            it->second.push_back(value);
            continue;
        }
        std::string error;
        if (!flag->ParseFrom(value, &error)) {
            usage_error(absl::StrFormat("invalid value '%s' for --%s: %s", value,
                                        arg.substr(0, arg.find('=')), error));
        }
    }
    for (const auto& [flag, values] : repeated) {
        if (flag->Name() == "listen") {
            absl::SetFlag(&FLAGS_listen, values);
        } else if (flag->Name() == "peer") {
            absl::SetFlag(&FLAGS_peer, values);
        } else {
            absl::SetFlag(&FLAGS_upstream, values);
        }
    }
    return positional;
}

ferry::config::RawOptions raw_from_flags(std::string role) {
    ferry::config::RawOptions r;
    r.role = std::move(role);
    r.shards = absl::GetFlag(FLAGS_shards);
    r.cpus = absl::GetFlag(FLAGS_cpus);
    r.ring_entries = absl::GetFlag(FLAGS_ring_entries);
    r.sqpoll = absl::GetFlag(FLAGS_sqpoll);
    r.buffer_size = absl::GetFlag(FLAGS_buffer_size).bytes;
    r.buffer_count = absl::GetFlag(FLAGS_buffer_count);
    r.tunnel_buffer_count = absl::GetFlag(FLAGS_tunnel_buffer_count);
    r.zerocopy_threshold = absl::GetFlag(FLAGS_zerocopy_threshold).bytes;
    r.max_frame_size = absl::GetFlag(FLAGS_max_frame_size).bytes;
    r.ws_max_message = absl::GetFlag(FLAGS_ws_max_message).bytes;
    r.grpc_max_message = absl::GetFlag(FLAGS_grpc_max_message).bytes;
    r.ws_ping_interval = absl::GetFlag(FLAGS_ws_ping_interval);
    r.ws_idle_timeout = absl::GetFlag(FLAGS_ws_idle_timeout);
    r.ws_allowed_origins = absl::GetFlag(FLAGS_ws_allowed_origins);
    r.stream_window = absl::GetFlag(FLAGS_stream_window).bytes;
    r.connection_window = absl::GetFlag(FLAGS_connection_window).bytes;
    r.max_connections = absl::GetFlag(FLAGS_max_connections);
    r.max_streams = absl::GetFlag(FLAGS_max_streams);
    r.max_tunnels = absl::GetFlag(FLAGS_max_tunnels);
    r.max_pending_tunnels = absl::GetFlag(FLAGS_max_pending_tunnels);
    r.tunnel_placement = absl::GetFlag(FLAGS_tunnel_placement);
    r.tunnels_per_peer = absl::GetFlag(FLAGS_tunnels_per_peer);
    r.route_key = absl::GetFlag(FLAGS_route_key);
    r.auto_trigger = absl::GetFlag(FLAGS_auto_trigger);
    r.blueprint = absl::GetFlag(FLAGS_blueprint);
    r.hooks = absl::GetFlag(FLAGS_hooks);
    r.trigger_timeout = absl::GetFlag(FLAGS_trigger_timeout);
    r.handshake_timeout = absl::GetFlag(FLAGS_handshake_timeout);
    r.max_upstream_connects = absl::GetFlag(FLAGS_max_upstream_connects);
    r.max_upstream_connects_per_tunnel = absl::GetFlag(FLAGS_max_upstream_connects_per_tunnel);
    r.admin_timeout = absl::GetFlag(FLAGS_admin_timeout);
    r.log_level_file = absl::GetFlag(FLAGS_log_level_file);
    r.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
    r.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
    r.ping_interval = absl::GetFlag(FLAGS_ping_interval);
    r.ping_timeout = absl::GetFlag(FLAGS_ping_timeout);
    r.peer_failure_threshold = absl::GetFlag(FLAGS_peer_failure_threshold);
    r.log_level = absl::GetFlag(FLAGS_log_level);
    r.log_format = absl::GetFlag(FLAGS_log_format);
    r.listen = absl::GetFlag(FLAGS_listen);
    r.peer = absl::GetFlag(FLAGS_peer);
    r.peer_weights = absl::GetFlag(FLAGS_peer_weights);
    r.peer_dns = absl::GetFlag(FLAGS_peer_dns);
    r.dns_refresh = absl::GetFlag(FLAGS_dns_refresh);
    r.dns_server = absl::GetFlag(FLAGS_dns_server);
    r.upstream_weights = absl::GetFlag(FLAGS_upstream_weights);
    r.listen_tunnel = absl::GetFlag(FLAGS_listen_tunnel);
    r.upstream = absl::GetFlag(FLAGS_upstream);
    r.admin = absl::GetFlag(FLAGS_admin);
    r.node_name = absl::GetFlag(FLAGS_node_name);
    r.tunnel_transport = absl::GetFlag(FLAGS_tunnel_transport);
    r.tunnel_ws_path = absl::GetFlag(FLAGS_tunnel_ws_path);
    r.tunnel_grpc_path = absl::GetFlag(FLAGS_tunnel_grpc_path);
    r.tls_cert = absl::GetFlag(FLAGS_tls_cert);
    r.tls_key = absl::GetFlag(FLAGS_tls_key);
    r.listen_tls_cert = absl::GetFlag(FLAGS_listen_tls_cert);
    r.listen_tls_key = absl::GetFlag(FLAGS_listen_tls_key);
    r.upstream_tls_ca = absl::GetFlag(FLAGS_upstream_tls_ca);
    r.tls_ca = absl::GetFlag(FLAGS_tls_ca);
    r.peer_name = absl::GetFlag(FLAGS_peer_name);
    r.allowed_peers = absl::GetFlag(FLAGS_allowed_peers);
    r.tls_ciphers = absl::GetFlag(FLAGS_tls_ciphers);
    r.ktls = absl::GetFlag(FLAGS_ktls);
    r.rekey_bytes = absl::GetFlag(FLAGS_rekey_bytes).bytes;
    r.rekey_interval = absl::GetFlag(FLAGS_rekey_interval);
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> positional = parse_flags(argc, argv, 1);
    if (positional.size() != 1) {
        usage_error(positional.empty() ? "missing role (initiator or terminator)"
                                       : "expected exactly one role");
    }
    absl::StatusOr<ferry::config::Options> options =
        ferry::config::validate(raw_from_flags(positional[0]), ferry::config::affinity_cpus(),
                                [] { return ferry::tls::ktls_supported(); });
    if (!options.ok()) {
        usage_error(std::string(options.status().message()));
    }
    ferry::base::LogLevel level = ferry::base::LogLevel::Info;
    (void)ferry::base::parse_log_level(absl::GetFlag(FLAGS_log_level), &level);
    if (!options->log_level_file.empty()) {
        level = *ferry::config::read_log_level_file(options->log_level_file);  // validated
    }
    ferry::base::g_log_level.store(static_cast<int>(level));
    ferry::base::g_log_format.store(static_cast<int>(options->log_format));

    const ferry::config::Options& o = *options;
    bool initiator = o.role == ferry::config::Role::Initiator;
    int shards = o.runtime.shards;
    // Process-wide limits, shared by every shard: --max-connections holds whatever the shards'
    // share of the traffic.
    ferry::role::ProcessLimits limits(o.max_connections, o.max_upstream_connects);
    // The services' counters of every shard, made before any shard runs: the admin endpoint on
    // shard 0 reads all of them.
    std::vector<std::unique_ptr<ferry::role::ShardMetrics>> service_metrics;
    std::vector<const ferry::role::ShardMetrics*> service_metrics_view;
    for (int i = 0; i < shards; ++i) {
        service_metrics.push_back(std::make_unique<ferry::role::ShardMetrics>());
        // Per-peer counters exist before any shard runs: the admin port may read them at once.
        for (const ferry::io::SocketAddress& peer : o.peers) {
            service_metrics.back()->peers.emplace_back(peer.to_string());
        }
        service_metrics_view.push_back(service_metrics.back().get());
    }
    // Terminator: where each accepted tunnel connection is served, across the shards.
    ferry::role::TunnelPlacement placement(static_cast<size_t>(shards), o.tunnel_placement);
    // GET /output: the latest results of the process (sink answers, triggered messages).
    ferry::role::ResultLog results(static_cast<size_t>(shards), 64);
    ferry::role::OutputEndpoint output(results);
    std::unique_ptr<ferry::role::HooksLibrary> hooks;
    if (!o.hooks.empty()) {
        absl::StatusOr<std::unique_ptr<ferry::role::HooksLibrary>> loaded =
            ferry::role::HooksLibrary::load(o.hooks);
        if (!loaded.ok()) {
            usage_error(absl::StrFormat("--hooks: %s", loaded.status().message()));
        }
        hooks = *std::move(loaded);
    }
    const ferry::io::NodeCheck node = ferry::io::check_node();
    const bool ktls_usable = ferry::tls::ktls_supported();
    {
        // io_uring switched off makes the start fail below: say why first, as a warning.
        const auto node_level =
            node.io_uring_disabled > 0 ? ferry::base::LogLevel::Warn : ferry::base::LogLevel::Info;
        if (ferry::base::log_enabled(node_level)) {
            ferry::base::log_line(node_level, ferry::io::describe(node, ktls_usable));
        }
    }
    // --peer-dns: the resolver thread's answers, read by every shard's initiator. Declared before
    // the runtime so both outlive the shards.
    ferry::discovery::PeerSnapshot dns_peers;
    std::unique_ptr<ferry::discovery::Resolver> resolver;
    if (o.has_peer_dns) {
        resolver = std::make_unique<ferry::discovery::Resolver>(o.peer_dns, &dns_peers);
    }
    ferry::shard::Runtime* runtime_ptr = nullptr;
    auto factory = [&](ferry::loop::Context& ctx, int index) {
        std::vector<std::unique_ptr<ferry::shard::Service>> services;
        ferry::role::Initiator* shard_initiator = nullptr;
        ferry::role::ShardMetrics& metrics = *service_metrics[static_cast<size_t>(index)];
        if (initiator) {
            ferry::role::InitiatorConfig c;
            c.listen = o.listen;
            c.peers = o.peers;
            c.peer_weights = o.peer_weights;
            c.dns_peers = o.has_peer_dns ? &dns_peers : nullptr;
            c.route_key = o.route_key;
            c.handshake_timeout_ns = o.handshake_timeout_ns;
            c.node_name = o.node_name;
            c.ws_ping_interval_ns = o.ws_ping_interval_ns;
            c.ws_idle_timeout_ns = o.ws_idle_timeout_ns;
            c.ws_allowed_origins = o.ws_allowed_origins;
            c.ws_max_message = o.ws_max_message;
            c.grpc_max_message = o.grpc_max_message;
            c.listener_tls = o.listener_tls;
            c.seed = static_cast<uint64_t>(getpid()) * 7919 + static_cast<uint64_t>(index);
            c.tunnels_per_peer = o.tunnels_per_peer;
            c.shards = static_cast<uint32_t>(shards);
            c.serves_triggers = index == 0;
            c.trigger.auto_count = o.auto_trigger;
            c.trigger.timeout_ns = o.trigger_timeout_ns;
            c.trigger.protocol = o.trigger_protocol;
            c.trigger.node_name = o.node_name;
            c.trigger.shard_index = static_cast<size_t>(index);
            c.trigger.results = &results;
            c.trigger.hooks = hooks.get();
            c.security = o.security;
            c.tuning = o.tuning;
            auto i = std::make_unique<ferry::role::Initiator>(ctx, metrics, limits, std::move(c));
            shard_initiator = i.get();
            services.push_back(std::move(i));
        } else {
            ferry::role::TerminatorConfig c;
            c.listen_tunnel = o.listen_tunnel;
            c.upstreams = o.upstreams;
            c.max_tunnels = o.max_tunnels;
            c.max_pending = o.max_pending_tunnels;
            c.handshake_timeout_ns = o.handshake_timeout_ns;
            c.max_upstream_connects_per_tunnel = o.max_upstream_connects_per_tunnel;
            c.security = o.security;
            c.node_name = o.node_name;
            c.ws_max_message = o.ws_max_message;
            c.grpc_max_message = o.grpc_max_message;
            c.upstream_tls = o.upstream_tls;
            c.tuning = o.tuning;
            c.placement = &placement;
            c.results = &results;
            c.hooks = hooks.get();
            c.shard_index = static_cast<size_t>(index);
            services.push_back(
                std::make_unique<ferry::role::Terminator>(ctx, metrics, limits, std::move(c)));
        }
        if (index == 0 && o.has_admin) {
            ferry::admin::AdminConfig ac;
            ac.listen = o.admin;
            ac.role = initiator ? "initiator" : "terminator";
            ac.node_name = o.node_name;
            ac.node = node;
            ac.ktls_usable = ktls_usable;
            ac.timeout_ns = o.admin_timeout_ns;
            ac.shard_metrics = service_metrics_view;
            for (size_t i = 0; i < runtime_ptr->shard_count(); ++i) {
                ac.loop_metrics.push_back(&runtime_ptr->metrics(i));
            }
            ac.routes.push_back({"/output", &output});
            if (shard_initiator != nullptr) {
                ac.routes.push_back({"/trigger", shard_initiator->trigger_endpoint()});
                ac.routes.push_back({"/routes", shard_initiator->routes_endpoint()});
            }
            services.push_back(std::make_unique<ferry::admin::AdminServer>(ctx, std::move(ac)));
        }
        return services;
    };
    std::vector<const ferry::io::SocketAddress*> listening;
    if (initiator) {
        for (const ferry::role::ServiceUrl& url : o.listen) {
            listening.push_back(&url.address);
        }
    } else {
        listening.push_back(&o.listen_tunnel);
    }
    if (o.has_admin) {
        listening.push_back(&o.admin);
    }
    for (const ferry::io::SocketAddress* a : listening) {
        if (absl::Status st = ferry::io::ensure_not_listening(*a); !st.ok()) {
            FERRY_LOG(Error, "cannot listen: %s", st.message());
            return 1;
        }
    }
    uint64_t fds = ferry::io::raise_fd_limit();
    if (o.max_connections != 0 && fds < 2ULL * o.max_connections + 64) {
        FERRY_LOG(Warn,
                  "open-files limit %u is below what --max-connections=%u needs (about %u); "
                  "connections beyond it will fail to be accepted",
                  fds, o.max_connections, 2ULL * o.max_connections + 64);
    }
    ferry::shard::RuntimeOptions runtime_options = o.runtime;
    runtime_options.on_reload = [&o] {
        if (o.log_level_file.empty()) {
            FERRY_LOG(Info, "SIGHUP: log level unchanged (no --log-level-file)");
            return;
        }
        absl::StatusOr<ferry::base::LogLevel> l =
            ferry::config::read_log_level_file(o.log_level_file);
        if (!l.ok()) {
            FERRY_LOG(Error, "SIGHUP: keeping the log level: %s", l.status().message());
            return;
        }
        ferry::base::g_log_level.store(static_cast<int>(*l));
        FERRY_LOG(Info, "SIGHUP: log level is now %s (from %s)", ferry::base::log_level_name(*l),
                  o.log_level_file);
    };
    ferry::shard::Runtime runtime(std::move(runtime_options), factory);
    runtime_ptr = &runtime;
    if (absl::Status st = runtime.start(); !st.ok()) {
        FERRY_LOG(Error, "%s", st.message());
        return 1;
    }
    if (resolver != nullptr) {
        resolver->start();
    }
    auto join = [](const auto& items, auto text) {
        std::string out;
        for (const auto& item : items) {
            out += (out.empty() ? "" : ", ") + text(item);
        }
        return out;
    };
    auto url_text = [](const ferry::role::ServiceUrl& u) { return u.text; };
    FERRY_LOG(
        Info, "%s '%s' %s running: %d shard(s), tunnel %s, %s",
        initiator ? "initiator" : "terminator", o.node_name, FERRY_VERSION, shards,
        !o.security.tls ? "plain (unencrypted)"
        : o.security.tls_options.ktls == ferry::transport::KtlsMode::Off
            ? "mutual TLS 1.3 (user space)"
        : ferry::tls::ktls_supported() ? "mutual TLS 1.3 (kTLS)"
                                       : "mutual TLS 1.3 (user space: no kTLS in this kernel)",
        initiator ? "listening on " + join(o.listen, url_text) + " -> peer(s) " +
                        join(o.peers, [](const auto& a) { return a.to_string(); }) +
                        (o.has_peer_dns
                             ? absl::StrFormat(
                                   "%sDNS %s:%u every %s", o.peers.empty() ? "" : ", ",
                                   o.peer_dns.name, o.peer_dns.port,
                                   absl::FormatDuration(absl::Nanoseconds(o.peer_dns.refresh_ns)))
                             : std::string())
                  : "tunnel on " + o.listen_tunnel.to_string() + " -> upstream(s) " +
                        join(o.upstreams, url_text));
    // Exit status: 0 drained cleanly; 3 the drain deadline passed and open streams were reset;
    // 1 a shard failed.
    switch (runtime.run_until_signal()) {
        case ferry::shard::Runtime::Outcome::Drained:
            FERRY_LOG(Info, "exiting");
            return 0;
        case ferry::shard::Runtime::Outcome::DrainDeadline:
            FERRY_LOG(Warn, "exiting after the drain deadline (streams were reset): status 3");
            return 3;
        case ferry::shard::Runtime::Outcome::ShardFailed:
            break;
    }
    FERRY_LOG(Error, "exiting: a shard failed");
    return 1;
}
