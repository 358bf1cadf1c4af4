#include "server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/job_service.h"
#include "api/rpc_interceptor.h"
#include "base/log.h"
#include "metrics/exporter.h"
#include "store/listener.h"

namespace spool {

namespace {
constexpr char kServiceName[] = "spool.v1.JobService";
}  // namespace

SpooldServer::SpooldServer(ServerOptions options)
    : options_(std::move(options)) {}

SpooldServer::~SpooldServer() {
  Shutdown();
  // Also when Start() failed half-way: no scrape may outlive the sources.
  if (exporter_) exporter_->Stop();
}

int SpooldServer::metrics_port() const {
  return exporter_ ? exporter_->port() : 0;
}

absl::Status SpooldServer::Start() {
  store::SessionPool::Options po;
  po.database_url = options_.database_url;
  po.size = options_.db_pool_size;
  pool_ = std::make_unique<store::SessionPool>(po);

  core::Observer* observer = options_.observer;
  if (!options_.metrics_listen.empty()) {
    metrics::ExporterOptions mo;
    mo.listen = options_.metrics_listen;
    mo.database_url = options_.database_url;
    mo.refresh = options_.metrics_refresh;
    mo.max_queues = options_.metrics_max_queues;
    mo.version = options_.version;
    mo.revision = options_.revision;
    exporter_ = std::make_unique<metrics::Exporter>(std::move(mo));
    observer = exporter_.get();
  }

  core::JobQueueOptions qo = options_.queue;
  // The core's storage, clock and listener: PostgreSQL sessions from the
  // pool, the real-time Timer (the queue's own), LISTEN on its own session.
  core::ListenerFactory listen =
      [url = options_.database_url](core::NotificationListener::Options o) {
        store::Listener::Options lo;
        lo.database_url = url;
        lo.channel = std::move(o.channel);
        lo.on_notify = std::move(o.on_notify);
        lo.on_reconnect = std::move(o.on_reconnect);
        return std::make_unique<store::Listener>(std::move(lo));
      };
  queue_ =
      std::make_unique<core::JobQueue>(pool_.get(), qo, observer,
                                       /*clock=*/nullptr, std::move(listen));
  service_ = std::make_unique<api::JobService>(queue_.get());

  if (exporter_) {
    exporter_->SetSources(pool_.get(), queue_.get());
    if (absl::Status s = exporter_->Start(); !s.ok()) return s;
    LogInfo("metrics listening",
            {{"listen", options_.metrics_listen}, {"port", exporter_->port()}});
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Logs failed calls and, with metrics, times every call by method and code.
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(api::MakeRpcInterceptorFactory(exporter_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(),
                           &port_);
  builder.RegisterService(service_.get());
  // Room for a maximal job plus headers and framing; batches share it.
  const int64_t max_message =
      std::max<int64_t>(4 << 20, qo.limits.max_payload_bytes * 4 + (1 << 20));
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<int64_t>(max_message, INT32_MAX)));
  builder.SetMaxSendMessageSize(-1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      static_cast<int>(std::min<int64_t>(
          absl::ToInt64Milliseconds(options_.min_client_ping_interval),
          INT32_MAX)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC sets SO_REUSEPORT by default, so a second server of the same user
  // on a taken port would share it and silently get half its connections:
  // refuse the port instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen));
  }
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(false);
  queue_->SetHealthCallback([health](bool healthy) {
    health->SetServingStatus("", healthy);
    health->SetServingStatus(kServiceName, healthy);
  });
  queue_->Start();
  return absl::OkStatus();
}

void SpooldServer::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  LogInfo("shutting down",
          {{"grace", absl::FormatDuration(options_.shutdown_grace)}});
  server_->GetHealthCheckService()->Shutdown();
  // Waiting long-polls return empty; new calls get UNAVAILABLE; calls in
  // flight finish within the grace period.
  queue_->BeginShutdown();
  const int64_t left = service_->Drain(absl::Now() + options_.shutdown_grace);
  if (left > 0) LogWarning("calls cut off at shutdown", {{"calls", left}});
  // Nothing is in flight now: close the listeners and connections at once
  // (a later deadline only makes gRPC wait for idle clients).
  server_->Shutdown(absl::ToChronoTime(absl::Now()));
  queue_->Stop();
  pool_->Shutdown();
  server_.reset();
  if (exporter_) exporter_->Stop();
}

}  // namespace spool
