#include "worker_core.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "spool/wire/queue_name.h"

namespace spool::internal {
namespace {

constexpr int kMaxConcurrency = 4096;

std::string DefaultWorkerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "unknown", ":", getpid());
}

}  // namespace

WorkerCore::WorkerCore(WorkerOptions options, const Clock& clock)
    : runtime_(
          options,
          options.worker_id.empty() ? DefaultWorkerId() : options.worker_id,
          clock),
      jobs_(clock),
      nacks_(runtime_, jobs_),
      acks_(runtime_, jobs_),
      extender_(runtime_, jobs_) {
  absl::StatusOr<std::shared_ptr<Connection>> connection =
      Connection::Create(runtime_.options.client);
  if (connection.ok()) {
    runtime_.connection = *std::move(connection);
  } else {
    connection_status_ = connection.status();
  }
}

WorkerCore::~WorkerCore() = default;

absl::Status WorkerCore::Register(std::string queue,
                                  std::shared_ptr<Handler> handler,
                                  QueueOptions options) {
  absl::MutexLock lock(&state_mu_);
  if (state_ != State::kIdle) {
    return absl::FailedPreconditionError("Register() after Start()");
  }
  if (!wire::IsValidQueueName(queue)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid queue name \"", queue,
                     "\": want [A-Za-z0-9][A-Za-z0-9_.-]{0,127}"));
  }
  if (handler == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue ", queue, ": null handler"));
  }
  if (options.concurrency < 1 || options.concurrency > kMaxConcurrency) {
    return absl::InvalidArgumentError(absl::StrCat(
        "queue ", queue, ": concurrency must be in 1..", kMaxConcurrency));
  }
  if (options.visibility_timeout < absl::Seconds(1) ||
      options.visibility_timeout > absl::Hours(12)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "queue ", queue, ": visibility_timeout must be in 1s..12h"));
  }
  if (options.max_wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue ", queue, ": max_wait must not be negative"));
  }
  for (const auto& q : queues_) {
    if (q->name() == queue) {
      return absl::AlreadyExistsError(
          absl::StrCat("queue ", queue, " already has a handler"));
    }
  }
  queues_.push_back(
      std::make_unique<QueueRunner>(std::move(queue), std::move(handler),
                                    options, runtime_, jobs_, nacks_, acks_));
  return absl::OkStatus();
}

bool WorkerCore::running() const {
  absl::MutexLock lock(&state_mu_);
  return state_ == State::kRunning;
}

absl::Status WorkerCore::Start() {
  absl::MutexLock lock(&state_mu_);
  if (state_ != State::kIdle) {
    return absl::FailedPreconditionError("Start() called twice");
  }
  if (!connection_status_.ok()) return connection_status_;
  if (queues_.empty()) {
    return absl::FailedPreconditionError("no queue registered");
  }
  if (runtime_.options.ack_flush_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("ack_flush_delay must not be negative");
  }
  state_ = State::kRunning;
  // The runtime's threads keep this core alive: a handler thread left
  // behind by Stop() may outlive the Worker.
  const std::shared_ptr<const void> self = shared_from_this();
  extender_.Start(self);
  acks_.Start(self);
  std::string queue_names;
  for (auto& q : queues_) {
    q->Start(self);
    absl::StrAppend(&queue_names, queue_names.empty() ? "" : ",", q->name(),
                    ":", q->options().concurrency);
  }
  runtime_.log.Info("worker_started", {{"worker_id", runtime_.worker_id},
                                       {"queues", queue_names}});
  return absl::OkStatus();
}

}  // namespace spool::internal
