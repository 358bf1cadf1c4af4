// SpooldServer: wires the layers together (session pool -> queue core ->
// gRPC service, with the metrics exporter observing both), serves health and
// reflection, and runs the shutdown sequence. Kept apart from main() so tests
// and tools can embed a server.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/job_queue.h"
#include "store/pool.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace spool::api {
class JobService;
}  // namespace spool::api

namespace spool::metrics {
class Exporter;
}  // namespace spool::metrics

namespace spool {

struct ServerOptions {
  std::string database_url;
  std::string listen = "127.0.0.1:50051";
  int db_pool_size = 4;
  core::JobQueueOptions queue;
  // Grace period for in-flight calls at shutdown.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Clients may send HTTP/2 keepalive pings this often, with or without
  // calls in flight (gRPC's default, 5 minutes, would answer the SDK's
  // pings with GOAWAY "too_many_pings").
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  // Prometheus /metrics address (host:port, port 0 picks one); empty: no
  // exporter.
  std::string metrics_listen;
  // How often the exporter reads its gauges from PostgreSQL.
  absl::Duration metrics_refresh = absl::Seconds(10);
  // Distinct queue label values before the rest share "_other".
  int metrics_max_queues = 1000;
  // For spool_build_info.
  std::string version = "unknown";
  std::string revision = "unknown";
  // Observes the queue core when there is no exporter (tests).
  core::Observer* observer = nullptr;
};

class SpooldServer {
 public:
  explicit SpooldServer(ServerOptions options);
  ~SpooldServer();

  // Binds, starts the core and serves. Returns once serving.
  absl::Status Start();
  // The port actually bound (useful with port 0).
  int port() const { return port_; }
  core::JobQueue* queue() { return queue_.get(); }
  // Null without metrics_listen.
  metrics::Exporter* exporter() { return exporter_.get(); }
  // The bound /metrics port, 0 without metrics.
  int metrics_port() const;

  // Ends waiting long-polls empty, stops accepting calls, lets in-flight
  // calls finish within the grace period, then closes connections.
  void Shutdown();

 private:
  ServerOptions options_;
  // Declared first so it outlives the queue core that calls it.
  std::unique_ptr<metrics::Exporter> exporter_;
  std::unique_ptr<store::SessionPool> pool_;
  std::unique_ptr<core::JobQueue> queue_;
  std::unique_ptr<api::JobService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace spool
