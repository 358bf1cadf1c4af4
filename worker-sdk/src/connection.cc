#include "connection.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace spool::internal {
namespace {

bool IsPort(absl::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

// "1.2.3.4:80" -> true.
bool IsIpv4HostPort(const std::string& target) {
  const size_t colon = target.rfind(':');
  if (colon == std::string::npos) return false;
  if (!IsPort(absl::string_view(target).substr(colon + 1))) return false;
  const std::string host = target.substr(0, colon);
  in_addr addr;
  return inet_pton(AF_INET, host.c_str(), &addr) == 1;
}

// "[::1]:80" -> true.
bool IsIpv6HostPort(const std::string& target) {
  if (target.empty() || target[0] != '[') return false;
  const size_t close = target.find("]:");
  if (close == std::string::npos) return false;
  if (!IsPort(absl::string_view(target).substr(close + 2))) return false;
  const std::string host = target.substr(1, close - 1);
  in6_addr addr;
  return inet_pton(AF_INET6, host.c_str(), &addr) == 1;
}

}  // namespace

std::vector<std::string> PlanChannelTargets(
    const std::vector<std::string>& targets) {
  std::vector<std::string> ipv4;
  std::vector<std::string> ipv6;
  std::vector<std::string> plan;
  // Remember where the merged targets go so the order stays stable.
  int ipv4_slot = -1;
  int ipv6_slot = -1;
  for (const std::string& target : targets) {
    if (target.empty()) continue;
    if (IsIpv4HostPort(target)) {
      if (ipv4_slot < 0) {
        ipv4_slot = static_cast<int>(plan.size());
        plan.emplace_back();
      }
      ipv4.push_back(target);
    } else if (IsIpv6HostPort(target)) {
      if (ipv6_slot < 0) {
        ipv6_slot = static_cast<int>(plan.size());
        plan.emplace_back();
      }
      ipv6.push_back(target);
    } else {
      plan.push_back(target);
    }
  }
  if (ipv4_slot >= 0) {
    plan[ipv4_slot] = ipv4.size() == 1 && targets.size() == 1
                          ? ipv4[0]
                          : absl::StrCat("ipv4:", absl::StrJoin(ipv4, ","));
  }
  if (ipv6_slot >= 0) {
    plan[ipv6_slot] = ipv6.size() == 1 && targets.size() == 1
                          ? ipv6[0]
                          : absl::StrCat("ipv6:", absl::StrJoin(ipv6, ","));
  }
  return plan;
}

absl::StatusOr<std::shared_ptr<Connection>> Connection::Create(
    ClientOptions options) {
  if (options.default_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("default_deadline must be positive");
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("max_attempts must be at least 1");
  }
  if (options.keepalive_time < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("keepalive_time must not be negative");
  }
  if (options.keepalive_time > absl::ZeroDuration() &&
      options.keepalive_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "keepalive_timeout must be positive when keepalive_time is set");
  }
  std::shared_ptr<Connection> connection(new Connection(options));
  if (options.channel != nullptr) {
    Endpoint endpoint;
    endpoint.target = "(custom channel)";
    endpoint.channel = options.channel;
    endpoint.stub = v1::JobService::NewStub(endpoint.channel);
    connection->endpoints_.push_back(std::move(endpoint));
    return connection;
  }
  std::vector<std::string> plan = PlanChannelTargets(options.targets);
  if (plan.empty()) {
    return absl::InvalidArgumentError(
        "no target: set ClientOptions::targets (e.g. \"127.0.0.1:50051\")");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      options.credentials != nullptr ? options.credentials
                                     : grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
  // Independent connections per Client/Worker, so one's failures and
  // backoff never leak into another's.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  const int max_backoff_ms = static_cast<int>(std::clamp<int64_t>(
      absl::ToInt64Milliseconds(options.max_reconnect_backoff), 100, 120000));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              std::min(100, max_backoff_ms));
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is not a backoff: in gRPC it is the
  // least time a connection attempt gets to finish its handshake. Left at
  // gRPC's 20 s, so a slow handshake (TLS over a long link, a busy spoold)
  // is not cut off after 100 ms.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  if (options.keepalive_time > absl::ZeroDuration()) {
    auto ms = [](absl::Duration d) {
      return static_cast<int>(
          std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, INT32_MAX));
    };
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, ms(options.keepalive_time));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(options.keepalive_timeout));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // Long-polls send nothing for up to 30 s: keep pinging through them.
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  if (!options.authority.empty()) {
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, options.authority);
    args.SetSslTargetNameOverride(options.authority);
  }
  for (const std::string& target : plan) {
    Endpoint endpoint;
    endpoint.target = target;
    endpoint.channel = grpc::CreateCustomChannel(target, credentials, args);
    endpoint.stub = v1::JobService::NewStub(endpoint.channel);
    connection->endpoints_.push_back(std::move(endpoint));
  }
  return connection;
}

Connection::Endpoint& Connection::Pick() {
  const size_t n = endpoints_.size();
  const size_t start = next_.fetch_add(1, std::memory_order_relaxed) % n;
  if (n == 1) {
    endpoints_[0].channel->GetState(/*try_to_connect=*/true);
    return endpoints_[0];
  }
  int not_failing = -1;
  for (size_t i = 0; i < n; ++i) {
    Endpoint& e = endpoints_[(start + i) % n];
    const grpc_connectivity_state state = e.channel->GetState(true);
    if (state == GRPC_CHANNEL_READY) return e;
    if (not_failing < 0 && state != GRPC_CHANNEL_TRANSIENT_FAILURE) {
      not_failing = static_cast<int>((start + i) % n);
    }
  }
  return endpoints_[not_failing >= 0 ? static_cast<size_t>(not_failing)
                                     : start];
}

void Connection::Prepare(grpc::ClientContext* context,
                         absl::Time deadline) const {
  if (deadline != absl::InfiniteFuture()) {
    context->set_deadline(absl::ToChronoTime(deadline));
  }
  for (const auto& [key, value] : options_.metadata) {
    context->AddMetadata(key, value);
  }
}

bool Connection::WaitForReady(Endpoint& endpoint, absl::Time deadline) {
  grpc_connectivity_state state = endpoint.channel->GetState(true);
  while (state != GRPC_CHANNEL_READY) {
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    // Wake up at least every 200 ms: a channel in TRANSIENT_FAILURE may
    // need another connect nudge.
    const absl::Time wake = std::min(deadline, now + absl::Milliseconds(200));
    endpoint.channel->WaitForStateChange(state, absl::ToChronoTime(wake));
    state = endpoint.channel->GetState(true);
  }
  return true;
}

bool Connection::WaitForAnyReady(absl::Time deadline) {
  while (true) {
    for (Endpoint& e : endpoints_) {
      if (e.channel->GetState(true) == GRPC_CHANNEL_READY) return true;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    const absl::Time wake = std::min(deadline, now + absl::Milliseconds(50));
    Endpoint& first = endpoints_[0];
    first.channel->WaitForStateChange(first.channel->GetState(false),
                                      absl::ToChronoTime(wake));
  }
}

}  // namespace spool::internal
