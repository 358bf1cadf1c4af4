// The pieces several scenarios share.
#include "tools/bench/scenario.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace spool::bench {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  // Separate channels get separate TCP connections.
  args.SetInt("bench.channel_id", rand());
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

void QuietLog(std::string_view line) {
  if (line.find("level=error") != std::string_view::npos) {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  }
}

ClientOptions BenchClientOptions(const std::vector<std::string>& targets) {
  ClientOptions options;
  options.targets = targets;
  return options;
}

WorkerOptions BenchWorkerOptions(const std::vector<std::string>& targets,
                                 std::string worker_id) {
  WorkerOptions options;
  options.client.targets = targets;
  options.log_sink = QuietLog;
  options.worker_id = std::move(worker_id);
  return options;
}

ExactOnce CheckExactlyOnce(const std::vector<std::string>& ids,
                           const std::map<std::string, int>& seen) {
  ExactOnce out;
  for (const auto& id : ids) {
    auto it = seen.find(id);
    if (it == seen.end())
      ++out.lost;
    else if (it->second > 1)
      out.doubled += it->second - 1;
  }
  return out;
}

}  // namespace spool::bench
