// The gRPC side of a Client or Worker: one channel per planned target (all
// with round_robin load balancing), metadata and deadlines, and a pick that
// skips channels that cannot connect.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "spool/client.h"
#include "spool/v1/spool.grpc.pb.h"

namespace spool::internal {

// Turns the user's target list into channel targets: IP-literal "host:port"
// entries are merged into one "ipv4:a,b" / "ipv6:[a],[b]" target so a single
// round_robin channel balances across them; anything else (DNS names, URIs)
// gets a channel of its own, whose resolver may itself return several
// addresses. Pure, for tests.
std::vector<std::string> PlanChannelTargets(
    const std::vector<std::string>& targets);

class Connection {
 public:
  struct Endpoint {
    std::string target;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::JobService::Stub> stub;
  };

  static absl::StatusOr<std::shared_ptr<Connection>> Create(
      ClientOptions options);

  // The next endpoint in round-robin order, preferring one whose channel is
  // READY, then one not in TRANSIENT_FAILURE. Asks idle channels to connect.
  Endpoint& Pick();

  // Sets the deadline and the configured metadata on `context`.
  void Prepare(grpc::ClientContext* context, absl::Time deadline) const;

  // Waits until `endpoint` is READY (asking it to connect); false at deadline.
  static bool WaitForReady(Endpoint& endpoint, absl::Time deadline);
  // Waits until any endpoint is READY; false at deadline.
  bool WaitForAnyReady(absl::Time deadline);

  const ClientOptions& options() const { return options_; }
  size_t size() const { return endpoints_.size(); }

 private:
  explicit Connection(ClientOptions options) : options_(std::move(options)) {}

  ClientOptions options_;
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> next_{0};
};

}  // namespace spool::internal
