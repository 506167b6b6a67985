// What a role serves on the admin port beyond the probes (POST /trigger, GET /output): the admin
// server reads the request, body included, and hands it to the endpoint registered for its path.
// Declared here, below admin/, so role code can implement it.
#pragma once

#include <string_view>

namespace ferry::role {

// The one answer owed to an admin request. Shard 0's thread only.
class AdminReply {
  public:
    // Sends the response and closes the connection. Call once.
    virtual void respond(int status, std::string_view content_type,
                         std::string_view body) noexcept = 0;

  protected:
    ~AdminReply() = default;
};

class AdminEndpoint {
  public:
    virtual ~AdminEndpoint() = default;
    // Serves one request (`query`: the request-target after '?', or empty): answers through
    // `reply`, now or later, on this thread. `reply` stays valid until respond() or until
    // cancel(reply) tells that the client is gone.
    virtual void serve(std::string_view method, std::string_view query, std::string_view body,
                       AdminReply& reply) noexcept = 0;
    // The client of a request not yet answered went away: forget `reply`.
    virtual void cancel(AdminReply& reply) noexcept = 0;
};

}  // namespace ferry::role
