#include "ferry/config/options.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "ferry/base/log.h"

namespace ferry::config {
namespace {

absl::Status bad(std::string_view flag, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat("--%s: %s", flag, why));
}

bool power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

absl::Status in_range(std::string_view flag, uint64_t v, uint64_t lo, uint64_t hi) {
    if (v < lo || v > hi) {
        return bad(flag, absl::StrFormat("%u is out of range [%u, %u]", v, lo, hi));
    }
    return absl::OkStatus();
}

absl::Status positive(std::string_view flag, absl::Duration d) {
    if (d <= absl::ZeroDuration()) {
        return bad(flag, "must be a positive duration like 500ms or 10s");
    }
    return absl::OkStatus();
}

absl::StatusOr<io::SocketAddress> address(std::string_view flag, const std::string& value);

// --peer-weights / --upstream-weights: ADDR=WEIGHT entries; the weight of each of `targets` (1
// where none is given). ADDR names one of them by its address; a weight is a positive number.
absl::StatusOr<std::vector<double>> weights(std::string_view flag,
                                            const std::vector<std::string>& entries,
                                            const std::vector<io::SocketAddress>& targets,
                                            std::string_view what) {
    std::vector<double> out(targets.size(), 1.0);
    std::vector<bool> given(targets.size(), false);
    for (const std::string& entry : entries) {
        const size_t eq = entry.rfind('=');
        double w = 0;
        if (eq == std::string::npos || !absl::SimpleAtod(entry.substr(eq + 1), &w) ||
            !std::isfinite(w) || w <= 0 || w > 1e6) {
            return bad(flag, absl::StrFormat("'%s': expected ADDR=WEIGHT with a weight above 0 "
                                             "and at most 1000000",
                                             entry));
        }
        absl::StatusOr<io::SocketAddress> a = address(flag, entry.substr(0, eq));
        if (!a.ok()) {
            return a.status();
        }
        size_t i = 0;
        while (i < targets.size() && targets[i].to_string() != a->to_string()) {
            ++i;
        }
        if (i == targets.size()) {
            return bad(flag, absl::StrFormat("'%s' names no %s", entry, what));
        }
        if (given[i]) {
            return bad(flag,
                       absl::StrFormat("'%s': %s has a weight already", entry, a->to_string()));
        }
        given[i] = true;
        out[i] = w;
    }
    return out;
}

absl::StatusOr<io::SocketAddress> address(std::string_view flag, const std::string& value) {
    if (value.empty()) {
        return bad(flag, "is required for this role");
    }
    absl::StatusOr<io::SocketAddress> a = io::parse_address(value);
    if (!a.ok()) {
        return bad(flag, a.status().message());
    }
    return a;
}

uint64_t to_ns(absl::Duration d) { return static_cast<uint64_t>(absl::ToInt64Nanoseconds(d)); }

// Endpoints of a repeatable flag, at least one.
absl::StatusOr<std::vector<role::ServiceUrl>> service_urls(std::string_view flag,
                                                           const std::vector<std::string>& values) {
    if (values.empty()) {
        return bad(flag, "is required for this role");
    }
    std::vector<role::ServiceUrl> urls;
    for (const std::string& v : values) {
        absl::StatusOr<role::ServiceUrl> url = parse_service_url(flag, v);
        if (!url.ok()) {
            return url.status();
        }
        urls.push_back(*std::move(url));
    }
    return urls;
}

// What this build serves: tcp:// and ws:// both ways (without a ws upstream the terminator
// answers WebSocket streams with its built-in sink). The rest is refused at start, named.
absl::Status served(std::string_view flag, const role::ServiceUrl& url, Role side) {
    if (url.scheme == role::Scheme::Tcp) {
        return absl::OkStatus();
    }
    if (url.scheme == role::Scheme::Ws) {
        return absl::OkStatus();
    }
    if (url.scheme == role::Scheme::Wss && side == Role::Initiator) {
        return absl::OkStatus();
    }
    // grpc:// both ways: h2c with prior knowledge. Without a grpc upstream the terminator
    // answers gRPC streams with its built-in lane7 sink.
    if (url.scheme == role::Scheme::Grpc) {
        return absl::OkStatus();
    }
    // grpcs:// both ways: HTTP/2 over TLS with ALPN h2 (--listen-tls-cert at the initiator,
    // --upstream-tls-ca or the system's trust store at the terminator).
    if (url.scheme == role::Scheme::Grpcs) {
        return absl::OkStatus();
    }
    if (url.scheme == role::Scheme::Wss && side == Role::Terminator) {
        return bad(flag, absl::StrFormat("'%s': a wss:// upstream is not served by this build yet "
                                         "(use ws://, or no ws upstream for the built-in sink)",
                                         url.text));
    }
    const char* what = url.tls() ? (url.scheme == role::Scheme::Wss ? "wss" : "grpcs")
                                 : role::protocol_name(url.protocol());
    return bad(flag, absl::StrFormat("'%s': %s is not served by this build yet (only tcp://, "
                                     "HOST:PORT, ws://, grpc://, grpcs:// and wss:// listeners)",
                                     url.text, what));
}

}  // namespace

absl::StatusOr<role::ServiceUrl> parse_service_url(std::string_view flag, std::string_view text) {
    role::ServiceUrl url;
    url.text = std::string(text);
    std::string_view rest = text;
    uint16_t default_port = 0;
    if (size_t sep = text.find("://"); sep != std::string_view::npos) {
        const std::string_view scheme = text.substr(0, sep);
        rest = text.substr(sep + 3);
        if (scheme == "tcp") {
            url.scheme = role::Scheme::Tcp;
        } else if (scheme == "ws") {
            url.scheme = role::Scheme::Ws;
            default_port = 80;
        } else if (scheme == "wss") {
            url.scheme = role::Scheme::Wss;
            default_port = 443;
        } else if (scheme == "grpc") {
            url.scheme = role::Scheme::Grpc;
        } else if (scheme == "grpcs") {
            url.scheme = role::Scheme::Grpcs;
        } else {
            return bad(flag, absl::StrFormat("'%s': unknown scheme '%s' (expected tcp, ws, wss, "
                                             "grpc or grpcs)",
                                             text, scheme));
        }
    }
    const size_t path_at = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, path_at);
    if (path_at != std::string_view::npos) {
        const std::string_view target = rest.substr(path_at);
        if (target.front() == '?') {
            url.path.push_back('/');  // a query alone asks for the root
        }
        url.path.append(target.data(), target.size());
    }
    const bool websocket = url.scheme == role::Scheme::Ws || url.scheme == role::Scheme::Wss;
    if (websocket && url.path.empty()) {
        url.path.push_back('/');
    } else if (!websocket && !url.path.empty() && url.path != "/") {
        return bad(flag, absl::StrFormat("'%s': only ws:// and wss:// URLs take a path", text));
    } else if (!websocket) {
        url.path.clear();
    }
    if (authority.empty()) {
        return bad(flag, absl::StrFormat("'%s': no host:port", text));
    }
    // The port is what follows the last ':' outside brackets ([v6]:port).
    const size_t bracket = authority.rfind(']');
    const size_t colon = authority.rfind(':');
    const bool has_port =
        colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket);
    std::string host_port(authority);
    if (!has_port) {
        if (default_port == 0) {
            return bad(flag, absl::StrFormat("'%s': no port", text));
        }
        host_port += absl::StrFormat(":%u", default_port);
    }
    absl::StatusOr<io::SocketAddress> addr = io::parse_address(host_port);
    if (!addr.ok()) {
        return bad(flag, absl::StrFormat("'%s': %s", text, addr.status().message()));
    }
    url.address = *addr;
    url.port = addr->port();
    url.host = std::string(has_port ? authority.substr(0, colon) : authority);
    return url;
}

std::vector<int> affinity_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE; ++i) {
            if (CPU_ISSET(static_cast<size_t>(i), &set)) {
                cpus.push_back(i);
            }
        }
    }
    if (cpus.empty()) {
        cpus.push_back(0);
    }
    return cpus;
}

absl::StatusOr<base::LogLevel> read_log_level_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return absl::NotFoundError(absl::StrFormat("cannot read '%s'", path));
    }
    std::string word;
    in >> word;
    base::LogLevel level;
    if (!base::parse_log_level(word, &level)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "'%s' holds '%s', expected debug, info, warn, error or off", path, word));
    }
    return level;
}

std::string default_node_name() {
    if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') {
        return pod;
    }
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') {
        return host;
    }
    return "ferry";
}

absl::StatusOr<std::vector<int>> parse_cpu_list(std::string_view text,
                                                const std::vector<int>& allowed) {
    std::vector<int> cpus;
    for (absl::string_view part :
         absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
        std::vector<absl::string_view> range = absl::StrSplit(part, '-');
        int lo = 0;
        int hi = 0;
        if (range.size() > 2 || !absl::SimpleAtoi(range.front(), &lo) ||
            !absl::SimpleAtoi(range.back(), &hi) || lo < 0 || hi < lo) {
            return bad("cpus", absl::StrFormat("'%s' is not a CPU list like 0,2-3", text));
        }
        for (int c = lo; c <= hi; ++c) {
            if (std::find(allowed.begin(), allowed.end(), c) == allowed.end()) {
                return bad("cpus",
                           absl::StrFormat("CPU %d is not in this process's affinity mask", c));
            }
            if (std::find(cpus.begin(), cpus.end(), c) != cpus.end()) {
                return bad("cpus", absl::StrFormat("CPU %d is listed twice", c));
            }
            cpus.push_back(c);
        }
    }
    return cpus;
}

absl::Status security(const RawOptions& raw, Role role, KtlsProbe ktls_available,
                      role::TunnelSecurity* out) {
    if (raw.ktls == "auto") {
        out->tls_options.ktls = transport::KtlsMode::Auto;
    } else if (raw.ktls == "on") {
        out->tls_options.ktls = transport::KtlsMode::On;
        if (ktls_available != nullptr && !ktls_available()) {
            return bad("ktls",
                       "'on' but this kernel offers no kTLS (setsockopt TCP_ULP \"tls\" "
                       "fails: CONFIG_TLS missing or tls module not loaded)");
        }
    } else if (raw.ktls == "off") {
        out->tls_options.ktls = transport::KtlsMode::Off;
    } else {
        return bad("ktls", "expected auto, on or off");
    }
    if (raw.rekey_interval < absl::ZeroDuration()) {
        return bad("rekey-interval", "must not be negative (0 turns rotation by age off)");
    }
    if (raw.tunnel_transport == "plain") {
        out->tls = false;
        return absl::OkStatus();
    }
    if (raw.tunnel_transport != "tls" && raw.tunnel_transport != "ws" &&
        raw.tunnel_transport != "grpc") {
        return bad("tunnel-transport", "expected tls (default), ws, grpc or plain");
    }
    out->tls = true;
    out->ws = raw.tunnel_transport == "ws";
    out->grpc = raw.tunnel_transport == "grpc";
    if (out->grpc) {
        if (raw.tunnel_grpc_path.size() < 2 || raw.tunnel_grpc_path.front() != '/' ||
            raw.tunnel_grpc_path.find_first_of(" ?#\r\n\t") != std::string::npos) {
            return bad("tunnel-grpc-path",
                       "must be a path starting with '/' (/package.Service/Method; no query, no "
                       "spaces)");
        }
        out->grpc_options.is_server = role == Role::Terminator;
        out->grpc_options.path = raw.tunnel_grpc_path;
        if (!raw.peer_name.empty()) {
            out->grpc_options.authority = raw.peer_name;
        }
    }
    if (out->ws) {
        if (raw.tunnel_ws_path.empty() || raw.tunnel_ws_path.front() != '/' ||
            raw.tunnel_ws_path.find_first_of(" ?#\r\n\t") != std::string::npos) {
            return bad("tunnel-ws-path", "must be a path starting with '/' (no query, no spaces)");
        }
        out->ws_options.is_server = role == Role::Terminator;
        out->ws_options.path = raw.tunnel_ws_path;
        out->ws_options.host = raw.peer_name;
    }
    for (auto [flag, file] :
         {std::pair{"tls-cert", &raw.tls_cert}, std::pair{"tls-key", &raw.tls_key},
          std::pair{"tls-ca", &raw.tls_ca}}) {
        if (file->empty()) {
            return bad(flag, absl::StrFormat("is required with --tunnel-transport=%s "
                                             "(tools/gen-certs.sh makes a set)",
                                             raw.tunnel_transport));
        }
        if (access(file->c_str(), R_OK) != 0) {
            return bad(flag, absl::StrFormat("cannot read '%s'", *file));
        }
    }
    tls::TlsConfig& c = out->tls_config;
    c.is_server = role == Role::Terminator;
    c.cert_file = raw.tls_cert;
    c.key_file = raw.tls_key;
    c.ca_file = raw.tls_ca;
    if (role == Role::Initiator) {
        if (raw.peer_name.empty()) {
            return bad("peer-name", "the terminator's certificate name must be checked");
        }
        c.peer_name = raw.peer_name;
    } else if (!raw.allowed_peers.empty()) {
        for (absl::string_view name : absl::StrSplit(absl::string_view(raw.allowed_peers), ',')) {
            if (!name.empty()) {
                c.allowed_peer_names.emplace_back(name);
            }
        }
    }
    if (!raw.tls_ciphers.empty()) {
        c.ciphersuites = raw.tls_ciphers;
    }
    out->tls_options.rekey_bytes = raw.rekey_bytes;
    out->tls_options.rekey_interval_ns = to_ns(raw.rekey_interval);
    return absl::OkStatus();
}

namespace {

// wss:// and grpcs:// listeners show clients their own certificate, apart from the tunnel's (a
// public name).
absl::Status listener_tls(const RawOptions& raw, Options& o) {
    const bool wanted = std::any_of(o.listen.begin(), o.listen.end(),
                                    [](const role::ServiceUrl& u) { return u.tls(); });
    if (!wanted) {
        if (!raw.listen_tls_cert.empty() || !raw.listen_tls_key.empty()) {
            return bad("listen-tls-cert", "is set but no --listen is a wss:// or grpcs:// URL");
        }
        return absl::OkStatus();
    }
    for (auto [flag, file] : {std::pair{"listen-tls-cert", &raw.listen_tls_cert},
                              std::pair{"listen-tls-key", &raw.listen_tls_key}}) {
        if (file->empty()) {
            return bad(flag,
                       "is required for a wss:// or grpcs:// listener (the certificate "
                       "clients see)");
        }
        if (access(file->c_str(), R_OK) != 0) {
            return bad(flag, absl::StrFormat("cannot read '%s'", *file));
        }
    }
    tls::TlsConfig c;
    c.is_server = true;
    c.verify_peer = false;
    c.alpn = "http/1.1";
    c.cert_file = raw.listen_tls_cert;
    c.key_file = raw.listen_tls_key;
    if (!raw.tls_ciphers.empty()) {
        c.ciphersuites = raw.tls_ciphers;
    }
    o.listener_tls = std::move(c);
    return absl::OkStatus();
}

// A grpcs:// upstream is a server not ours: TLS 1.3 with ALPN h2, SNI and the certificate check
// by its host, trusted by --upstream-tls-ca or the system's store; no client certificate.
absl::Status upstream_tls(const RawOptions& raw, Options& o) {
    const auto grpcs = std::find_if(o.upstreams.begin(), o.upstreams.end(),
                                    [](const auto& u) { return u.scheme == role::Scheme::Grpcs; });
    if (grpcs == o.upstreams.end()) {
        if (!raw.upstream_tls_ca.empty()) {
            return bad("upstream-tls-ca", "is set but no --upstream is a grpcs:// URL");
        }
        return absl::OkStatus();
    }
    if (!raw.upstream_tls_ca.empty() && access(raw.upstream_tls_ca.c_str(), R_OK) != 0) {
        return bad("upstream-tls-ca", absl::StrFormat("cannot read '%s'", raw.upstream_tls_ca));
    }
    tls::TlsConfig c;
    c.is_server = false;
    c.foreign_server = true;
    c.peer_name = grpcs->host;
    c.ca_file = raw.upstream_tls_ca;
    c.alpn = "h2";
    o.upstream_tls = std::move(c);
    return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Options> validate(const RawOptions& raw, const std::vector<int>& allowed_cpus,
                                 KtlsProbe ktls_available) {
    Options o;
    if (raw.role == "initiator") {
        o.role = Role::Initiator;
    } else if (raw.role == "terminator") {
        o.role = Role::Terminator;
    } else {
        return absl::InvalidArgumentError(
            absl::StrFormat("unknown role '%s' (expected initiator or terminator)", raw.role));
    }
    base::LogLevel level;
    if (!base::parse_log_level(raw.log_level, &level)) {
        return bad("log-level", "expected debug, info, warn, error or off");
    }
    base::LogFormat log_format;
    if (!base::parse_log_format(raw.log_format, &log_format)) {
        return bad("log-format", "expected text or json");
    }
    if (raw.shards < 0 || raw.shards > 1024) {
        return bad("shards", "must be 0 (one per CPU) to 1024");
    }
    std::vector<int> pin;
    if (raw.cpus == "auto" || raw.cpus.empty()) {
        pin = allowed_cpus;
    } else if (raw.cpus != "none") {
        absl::StatusOr<std::vector<int>> list = parse_cpu_list(raw.cpus, allowed_cpus);
        if (!list.ok()) {
            return list.status();
        }
        pin = *std::move(list);
    }
    int shards = raw.shards;
    if (shards == 0) {
        shards = static_cast<int>(pin.empty() ? allowed_cpus.size() : pin.size());
    }
    if (!power_of_two(raw.ring_entries) || raw.ring_entries < 64 || raw.ring_entries > 32768) {
        return bad("ring-entries", "must be a power of two in [64, 32768]");
    }
    if (absl::Status st = in_range("buffer-size", raw.buffer_size, 4096, 1 << 20); !st.ok()) {
        return st;
    }
    if (absl::Status st = in_range("buffer-count", raw.buffer_count, 64, 65536); !st.ok()) {
        return st;
    }
    if (absl::Status st = in_range("tunnel-buffer-count", raw.tunnel_buffer_count, 64, 65536);
        !st.ok()) {
        return st;
    }
    // Up to 1 GiB: the sink collects a whole message in memory.
    if (absl::Status st = in_range("ws-max-message", raw.ws_max_message, 1, uint64_t{1} << 30);
        !st.ok()) {
        return st;
    }
    // A gRPC message length is 32 bits; up to 1 GiB, as for WebSocket.
    if (absl::Status st = in_range("grpc-max-message", raw.grpc_max_message, 1, uint64_t{1} << 30);
        !st.ok()) {
        return st;
    }
    // The protocol's floor (docs/tunnel-protocol.md): every peer must take 16 KiB frames.
    if (absl::Status st = in_range("max-frame-size", raw.max_frame_size, 16384, 16 << 20);
        !st.ok()) {
        return st;
    }
    if (absl::Status st = in_range("stream-window", raw.stream_window, 1024, 0x7fff'ffff);
        !st.ok()) {
        return st;
    }
    if (absl::Status st =
            in_range("connection-window", raw.connection_window, raw.stream_window, 0x7fff'ffff);
        !st.ok()) {
        return bad("connection-window", "must be at least --stream-window and below 2^31");
    }
    if (absl::Status st = in_range("max-streams", raw.max_streams, 1, 1 << 20); !st.ok()) {
        return st;
    }
    for (auto [flag, v] :
         {std::pair{"max-tunnels", raw.max_tunnels},
          std::pair{"max-pending-tunnels", raw.max_pending_tunnels},
          std::pair{"max-upstream-connects", raw.max_upstream_connects},
          std::pair{"max-upstream-connects-per-tunnel", raw.max_upstream_connects_per_tunnel}}) {
        if (absl::Status st = in_range(flag, v, 1, 1 << 20); !st.ok()) {
            return st;
        }
    }
    if (!raw.log_level_file.empty()) {
        absl::StatusOr<base::LogLevel> from_file = read_log_level_file(raw.log_level_file);
        if (!from_file.ok()) {
            return bad("log-level-file", from_file.status().message());
        }
    }
    if (raw.peer_failure_threshold < 0 || raw.peer_failure_threshold > 1000) {
        return bad("peer-failure-threshold", "must be 0 (off) to 1000 missed ping intervals");
    }
    for (auto [flag, d] : {std::pair{"connect-timeout", raw.connect_timeout},
                           std::pair{"drain-timeout", raw.drain_timeout},
                           std::pair{"handshake-timeout", raw.handshake_timeout},
                           std::pair{"admin-timeout", raw.admin_timeout},
                           std::pair{"ping-interval", raw.ping_interval},
                           std::pair{"ping-timeout", raw.ping_timeout}}) {
        if (absl::Status st = positive(flag, d); !st.ok()) {
            return st;
        }
    }
    if (absl::Status st = security(raw, o.role, ktls_available, &o.security); !st.ok()) {
        return st;
    }
    if (o.security.tls && raw.buffer_size < 16384) {
        return bad("buffer-size", "must be at least 16384 with TLS (one record per buffer)");
    }

    shard::RuntimeOptions& rt = o.runtime;
    rt.shards = shards;
    o.tuning.shards = static_cast<uint32_t>(shards);
    rt.cpus = pin;
    rt.drain_timeout_ns = to_ns(raw.drain_timeout);
    shard::ShardOptions& so = rt.shard;
    so.ring.entries = raw.ring_entries;
    so.ring.sqpoll = raw.sqpoll;
    so.buffer_size = static_cast<uint32_t>(raw.buffer_size);
    so.buffer_count = raw.buffer_count;
    // Half of each pool is lent to the kernel for receives; the rest backs sends, control frames
    // and TLS records.
    auto ring_entries = [](uint32_t count) {
        uint32_t entries = 1;
        while (entries * 2 <= count / 2 && entries * 2 <= 32768) {
            entries *= 2;
        }
        return entries;
    };
    so.buffer_ring_entries = ring_entries(raw.buffer_count);
    so.tunnel_buffer_count = raw.tunnel_buffer_count;
    so.tunnel_buffer_ring_entries = ring_entries(raw.tunnel_buffer_count);
    so.socket.zerocopy_threshold =
        raw.zerocopy_threshold == 0 || raw.zerocopy_threshold > UINT32_MAX
            ? UINT32_MAX
            : static_cast<uint32_t>(raw.zerocopy_threshold);
    so.socket.connect_timeout_ns = to_ns(raw.connect_timeout);
    // In range (checked above), so they fit 32 bits.
    o.tuning.max_frame_size = static_cast<uint32_t>(raw.max_frame_size);
    o.ws_max_message = raw.ws_max_message;
    o.grpc_max_message = static_cast<uint32_t>(raw.grpc_max_message);
    for (auto [flag, d, out] :
         {std::tuple{"ws-ping-interval", raw.ws_ping_interval, &o.ws_ping_interval_ns},
          std::tuple{"ws-idle-timeout", raw.ws_idle_timeout, &o.ws_idle_timeout_ns}}) {
        if (d < absl::ZeroDuration()) {
            return bad(flag, "must not be negative (0 turns it off)");
        }
        *out = static_cast<uint64_t>(absl::ToInt64Nanoseconds(d));
    }
    for (absl::string_view origin :
         absl::StrSplit(raw.ws_allowed_origins, ',', absl::SkipWhitespace())) {
        o.ws_allowed_origins.emplace_back(absl::StripAsciiWhitespace(origin));
    }
    o.tuning.stream_window = static_cast<uint32_t>(raw.stream_window);
    o.tuning.connection_window = static_cast<uint32_t>(raw.connection_window);
    o.tuning.max_streams = raw.max_streams;
    o.tuning.ping_interval_ns = to_ns(raw.ping_interval);
    o.tuning.ping_timeout_ns = to_ns(raw.ping_timeout);
    o.tuning.peer_failure_threshold = static_cast<uint32_t>(raw.peer_failure_threshold);
    o.max_connections = raw.max_connections;
    o.max_tunnels = raw.max_tunnels;
    o.max_pending_tunnels = raw.max_pending_tunnels;
    if (!role::parse_tunnel_placement(raw.tunnel_placement, &o.tunnel_placement)) {
        return bad("tunnel-placement", "expected balanced (default), kernel or rotate");
    }
    if (raw.auto_trigger > 10000) {
        return bad("auto-trigger", "at most 10000 messages (0 turns it off)");
    }
    o.auto_trigger = raw.auto_trigger;
    if (raw.blueprint == "ws") {
        o.trigger_protocol = proto::tunnel::StreamProtocol::WebSocket;
    } else if (raw.blueprint == "grpc") {
        o.trigger_protocol = proto::tunnel::StreamProtocol::Grpc;
    } else {
        return bad("blueprint",
                   "expected ws (default: a WebSocket message) or grpc (a lane7 call)");
    }
    o.hooks = raw.hooks;
    if (raw.trigger_timeout <= absl::ZeroDuration()) {
        return bad("trigger-timeout", "must be a positive duration like 500ms or 10s");
    }
    o.trigger_timeout_ns = static_cast<uint64_t>(absl::ToInt64Nanoseconds(raw.trigger_timeout));
    if (raw.tunnels_per_peer != "auto") {
        uint32_t n = 0;
        if (!absl::SimpleAtoi(raw.tunnels_per_peer, &n) || n < 1 || n > 64) {
            return bad("tunnels-per-peer", "expected auto (default) or a count from 1 to 64");
        }
        o.tunnels_per_peer = n;
    }
    o.max_upstream_connects = raw.max_upstream_connects;
    o.max_upstream_connects_per_tunnel = raw.max_upstream_connects_per_tunnel;
    o.handshake_timeout_ns = to_ns(raw.handshake_timeout);
    o.admin_timeout_ns = to_ns(raw.admin_timeout);
    o.log_level_file = raw.log_level_file;
    o.log_format = log_format;
    o.node_name = raw.node_name.empty() ? default_node_name() : raw.node_name;
    if (o.node_name.size() > 255) {
        return bad("node-name", "at most 255 bytes");
    }

    if (o.role == Role::Initiator) {
        absl::StatusOr<std::vector<role::ServiceUrl>> listen = service_urls("listen", raw.listen);
        if (!listen.ok()) {
            return listen.status();
        }
        for (const role::ServiceUrl& url : *listen) {
            if (absl::Status st = served("listen", url, Role::Initiator); !st.ok()) {
                return st;
            }
            for (const role::ServiceUrl& other : o.listen) {
                if (other.address.to_string() == url.address.to_string()) {
                    return bad("listen", absl::StrFormat("'%s' and '%s' are the same address",
                                                         other.text, url.text));
                }
            }
            o.listen.push_back(url);
        }
        if (absl::Status st = listener_tls(raw, o); !st.ok()) {
            return st;
        }
        if (raw.peer.empty() && raw.peer_dns.empty()) {
            return bad("peer", "is required for this role (or --peer-dns)");
        }
        if (!raw.peer_dns.empty()) {
            const size_t colon = raw.peer_dns.rfind(':');
            int port = 0;
            if (colon == std::string::npos || colon == 0 ||
                !absl::SimpleAtoi(raw.peer_dns.substr(colon + 1), &port) || port < 1 ||
                port > 65535) {
                return bad("peer-dns",
                           "expected NAME:PORT, e.g. "
                           "ferry-terminator.ferry.svc.cluster.local:7443");
            }
            o.has_peer_dns = true;
            o.peer_dns.name = raw.peer_dns.substr(0, colon);
            o.peer_dns.port = static_cast<uint16_t>(port);
            o.peer_dns.servers = raw.dns_server;
            if (absl::Status st = positive("dns-refresh", raw.dns_refresh); !st.ok()) {
                return st;
            }
            o.peer_dns.refresh_ns = to_ns(raw.dns_refresh);
        } else if (!raw.dns_server.empty()) {
            return bad("dns-server", "is for --peer-dns");
        }
        for (const std::string& p : raw.peer) {
            absl::StatusOr<io::SocketAddress> peer = address("peer", p);
            if (!peer.ok()) {
                return peer.status();
            }
            // One terminator named twice would get twice its share of the keys under two ids.
            for (const io::SocketAddress& other : o.peers) {
                if (other.to_string() == peer->to_string()) {
                    return bad("peer", absl::StrFormat("'%s' is given twice (as %s)", p,
                                                       peer->to_string()));
                }
            }
            o.peers.push_back(*peer);
        }
        absl::StatusOr<std::vector<double>> pw =
            weights("peer-weights", raw.peer_weights, o.peers, "--peer");
        if (!pw.ok()) {
            return pw.status();
        }
        o.peer_weights = *std::move(pw);
        absl::StatusOr<role::RouteKeyRule> route_key = role::parse_route_key(raw.route_key);
        if (!route_key.ok()) {
            return bad("route-key", route_key.status().message());
        }
        o.route_key = *std::move(route_key);
    } else {
        absl::StatusOr<io::SocketAddress> lt = address("listen-tunnel", raw.listen_tunnel);
        if (!lt.ok()) {
            return lt.status();
        }
        o.listen_tunnel = *lt;
        absl::StatusOr<std::vector<role::ServiceUrl>> up = service_urls("upstream", raw.upstream);
        if (!up.ok()) {
            return up.status();
        }
        for (const role::ServiceUrl& url : *up) {
            if (absl::Status st = served("upstream", url, Role::Terminator); !st.ok()) {
                return st;
            }
            for (const role::ServiceUrl& other : o.upstreams) {
                // Several upstreams of one protocol share its streams by routing key, so each
                // must be a distinct pod: two URLs on one address would hash as one.
                if (other.protocol() == url.protocol() &&
                    other.address.to_string() == url.address.to_string()) {
                    return bad("upstream", absl::StrFormat("'%s' and '%s' are the same address",
                                                           other.text, url.text));
                }
            }
            o.upstreams.push_back(url);
        }
        // ADDR=WEIGHT names an upstream by its address; the same address may serve two
        // protocols, and then both take the weight.
        std::vector<io::SocketAddress> addresses;
        for (const role::ServiceUrl& url : o.upstreams) {
            bool seen = false;
            for (const io::SocketAddress& a : addresses) {
                seen = seen || a.to_string() == url.address.to_string();
            }
            if (!seen) {
                addresses.push_back(url.address);
            }
        }
        absl::StatusOr<std::vector<double>> uw =
            weights("upstream-weights", raw.upstream_weights, addresses, "--upstream");
        if (!uw.ok()) {
            return uw.status();
        }
        for (role::ServiceUrl& url : o.upstreams) {
            for (size_t i = 0; i < addresses.size(); ++i) {
                if (addresses[i].to_string() == url.address.to_string()) {
                    url.weight = (*uw)[i];
                }
            }
        }
        if (!raw.peer_weights.empty()) {
            return bad("peer-weights", "is for the initiator (its --peer set)");
        }
        if (!raw.peer_dns.empty()) {
            return bad("peer-dns", "is for the initiator");
        }
        if (absl::Status st = upstream_tls(raw, o); !st.ok()) {
            return st;
        }
    }
    if (o.role == Role::Initiator && !raw.upstream_weights.empty()) {
        return bad("upstream-weights", "is for the terminator (its --upstream set)");
    }
    if (!raw.admin.empty()) {
        absl::StatusOr<io::SocketAddress> admin = address("admin", raw.admin);
        if (!admin.ok()) {
            return admin.status();
        }
        o.has_admin = true;
        o.admin = *admin;
    }
    return o;
}

}  // namespace ferry::config
