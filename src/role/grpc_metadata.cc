#include "ferry/role/grpc_metadata.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "ferry/proto/grpc/wire.h"

namespace ferry::role {

namespace {

bool binary_name(std::string_view name) {
    return absl::EndsWith(absl::string_view(name.data(), name.size()), "-bin");
}

}  // namespace

void GrpcMetadataBuilder::add(std::string_view name, std::string_view value) {
    fields_.emplace_back(std::string(name), std::string(value));
}

void GrpcMetadataBuilder::add_wire_field(std::string_view name, std::string_view value) {
    if (binary_name(name)) {
        std::string raw;
        if (!absl::Base64Unescape(absl::string_view(value.data(), value.size()), &raw)) {
            return;
        }
        fields_.emplace_back(std::string(name), std::move(raw));
        return;
    }
    if (name == "grpc-message") {
        std::string text(value.size(), '\0');
        text.resize(proto::grpc::percent_decode(value, text));
        fields_.emplace_back(std::string(name), std::move(text));
        return;
    }
    add(name, value);
}

std::span<const proto::tunnel::MetadataEntry> GrpcMetadataBuilder::entries() {
    entries_.clear();
    entries_.reserve(fields_.size());
    for (const auto& [name, value] : fields_) {
        entries_.emplace_back(name, value);
    }
    return entries_;
}

void GrpcHeaderList::add(std::string_view name, std::string_view value) {
    fields_.emplace_back(std::string(name), std::string(value));
}

void GrpcHeaderList::add_raw(std::string_view name, std::string_view value) {
    if (binary_name(name)) {
        std::string text = absl::Base64Escape(absl::string_view(value.data(), value.size()));
        while (!text.empty() && text.back() == '=') {
            text.pop_back();
        }
        fields_.emplace_back(std::string(name), std::move(text));
        return;
    }
    if (name == "grpc-message") {
        std::string text(proto::grpc::percent_encoded_size(value), '\0');
        text.resize(proto::grpc::percent_encode(value, text));
        fields_.emplace_back(std::string(name), std::move(text));
        return;
    }
    add(name, value);
}

}  // namespace ferry::role
