// gRPC metadata between HTTP/2 and the tunnel (tunnel protocol §6.2): on the tunnel, `-bin`
// values are raw bytes and grpc-message is plain text; on HTTP/2 they are base64 and
// percent-encoded. The edges that speak HTTP/2 convert; nothing in between looks.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/proto/tunnel/frame.h"

namespace ferry::role {

// Metadata for an OPEN, OPEN_ACK or TRAILERS, built from HTTP/2 fields.
class GrpcMetadataBuilder final {
  public:
    // As is.
    void add(std::string_view name, std::string_view value);
    // A field as it came on HTTP/2: `-bin` values base64-decoded (padded or not; a value that
    // is not base64 is dropped, as gRPC does), grpc-message percent-decoded.
    void add_wire_field(std::string_view name, std::string_view value);
    // Views of the fields, valid until the next add.
    [[nodiscard]] std::span<const proto::tunnel::MetadataEntry> entries();

  private:
    std::vector<std::pair<std::string, std::string>> fields_;
    std::vector<proto::tunnel::MetadataEntry> entries_;
};

// HTTP/2 fields built from tunnel metadata.
class GrpcHeaderList final {
  public:
    // As is (pseudo-headers, fields of our own).
    void add(std::string_view name, std::string_view value);
    // A tunnel field: `-bin` values base64-encoded (unpadded, as gRPC sends them),
    // grpc-message percent-encoded.
    void add_raw(std::string_view name, std::string_view value);
    [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& fields() const {
        return fields_;
    }
    [[nodiscard]] size_t size() const { return fields_.size(); }

  private:
    std::vector<std::pair<std::string, std::string>> fields_;
};

}  // namespace ferry::role
