#include "ferry/proto/grpc/lane7.h"

namespace ferry::proto::grpc::lane7 {

namespace {

enum WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLength = 2, kFixed32 = 5 };

bool read_varint(std::span<const std::byte> in, size_t* at, uint64_t* out) noexcept {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*at >= in.size()) {
            return false;
        }
        const auto b = std::to_integer<uint8_t>(in[(*at)++]);
        v |= uint64_t{b & 0x7fU} << shift;
        if ((b & 0x80U) == 0) {
            *out = v;
            return true;
        }
    }
    return false;  // more than 10 bytes
}

void write_varint(uint64_t v, std::string* out) {
    while (v >= 0x80) {
        out->push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out->push_back(static_cast<char>(v));
}

void write_bytes(uint32_t field, std::string_view value, std::string* out) {
    write_varint((uint64_t{field} << 3) | kLength, out);
    write_varint(value.size(), out);
    out->append(value);
}

// Walks the fields of `wire`, calling f(field, wire_type, varint, bytes) for each; false when
// malformed.
template <class F>
bool for_each_field(std::span<const std::byte> wire, F&& f) {
    size_t at = 0;
    while (at < wire.size()) {
        uint64_t key = 0;
        if (!read_varint(wire, &at, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) {
            return false;
        }
        const auto field = static_cast<uint32_t>(key >> 3);
        uint64_t number = 0;
        std::string_view bytes;
        switch (key & 7) {
            case kVarint:
                if (!read_varint(wire, &at, &number)) {
                    return false;
                }
                break;
            case kFixed64:
                if (wire.size() - at < 8) {
                    return false;
                }
                at += 8;
                break;
            case kFixed32:
                if (wire.size() - at < 4) {
                    return false;
                }
                at += 4;
                break;
            case kLength: {
                uint64_t len = 0;
                if (!read_varint(wire, &at, &len) || len > wire.size() - at) {
                    return false;
                }
                bytes = {reinterpret_cast<const char*>(wire.data() + at), static_cast<size_t>(len)};
                at += static_cast<size_t>(len);
                break;
            }
            default:
                return false;  // groups (3, 4) are not used by proto3, and 6, 7 do not exist
        }
        if (!f(field, static_cast<uint8_t>(key & 7), number, bytes)) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool decode_message(std::span<const std::byte> wire, std::string_view* payload) noexcept {
    *payload = {};
    return for_each_field(wire, [&](uint32_t field, uint8_t type, uint64_t, std::string_view b) {
        if (field == 1) {
            if (type != kLength) {
                return false;
            }
            *payload = b;  // the last one wins (protobuf merge rules for scalars)
        }
        return true;
    });
}

void encode_message(std::string_view payload, std::string* out) {
    if (!payload.empty()) {
        write_bytes(1, payload, out);
    }
}

void encode_result(std::string_view payload, std::span<const std::string> trail, uint32_t shard,
                   std::string* out) {
    if (!payload.empty()) {
        write_bytes(1, payload, out);
    }
    for (const std::string& hop : trail) {
        write_bytes(2, hop, out);
    }
    if (shard != 0) {
        write_varint((uint64_t{3} << 3) | kVarint, out);
        write_varint(shard, out);
    }
}

bool decode_result(std::span<const std::byte> wire, DecodedResult* out) {
    *out = {};
    return for_each_field(wire, [&](uint32_t field, uint8_t type, uint64_t n, std::string_view b) {
        if (field == 1 && type == kLength) {
            out->payload = std::string(b);
        } else if (field == 2 && type == kLength) {
            out->trail.emplace_back(b);
        } else if (field == 3 && type == kVarint) {
            out->shard = static_cast<uint32_t>(n);
        } else if (field <= 3) {
            return false;
        }
        return true;
    });
}

}  // namespace ferry::proto::grpc::lane7
