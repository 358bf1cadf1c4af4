#include "worker_core.h"

#include <unistd.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "backoff.h"
#include "convert.h"
#include "spool/wire/queue_name.h"
#include "spool/wire/time.h"

namespace spool::internal {
namespace {

constexpr int kMaxLeaseBatch = 256;

// The WorkerCore whose thread (handler, lease, ack or extension) this is:
// Stop() from such a thread would wait for itself.
thread_local const void* t_worker_thread_of = nullptr;
constexpr int kMaxConcurrency = 4096;
// Added to a long-poll's wait for its RPC deadline: a Lease that times out
// on the client may have leased jobs nobody will run until they expire.
constexpr absl::Duration kLeaseDeadlineMargin = absl::Seconds(10);
constexpr absl::Duration kAckRpcTimeout = absl::Seconds(10);
// Acks failing with codes other than UNAVAILABLE/DEADLINE_EXCEEDED are
// given up after this many tries.
constexpr int kMaxAckFailures = 10;

std::string DefaultWorkerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "unknown", ":", getpid());
}

std::string Ms(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d));
}

std::string CodeName(absl::StatusCode code) {
  return absl::StatusCodeToString(code);
}

}  // namespace

WorkerCore::WorkerCore(WorkerOptions options)
    : options_(std::move(options)),
      worker_id_(options_.worker_id.empty() ? DefaultWorkerId()
                                            : options_.worker_id),
      log_("spool.worker", options_.log_sink),
      acks_(static_cast<size_t>(std::clamp(options_.ack_batch_size, 1, 1000)),
            options_.ack_flush_delay) {
  absl::StatusOr<std::shared_ptr<Connection>> connection =
      Connection::Create(options_.client);
  if (connection.ok()) {
    connection_ = *std::move(connection);
  } else {
    connection_status_ = connection.status();
  }
}

WorkerCore::~WorkerCore() = default;

template <typename F>
void WorkerCore::Observe(F&& f) {
  if (options_.observer == nullptr) return;
  try {
    f(*options_.observer);
  } catch (...) {
    // Observers must not throw; a metrics bug must not stop the worker.
  }
}

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
    if (q->name == queue) {
      return absl::AlreadyExistsError(
          absl::StrCat("queue ", queue, " already has a handler"));
    }
  }
  auto q = std::make_unique<Queue>();
  q->name = std::move(queue);
  q->handler = std::move(handler);
  q->options = options;
  queues_.push_back(std::move(q));
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
  if (options_.ack_flush_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("ack_flush_delay must not be negative");
  }
  state_ = State::kRunning;
  std::shared_ptr<WorkerCore> self = shared_from_this();
  extend_thread_ = std::thread([self] {
    t_worker_thread_of = self.get();
    self->ExtendLoop();
  });
  ack_thread_ = std::thread([self] {
    t_worker_thread_of = self.get();
    self->AckLoop();
  });
  std::string queue_names;
  for (auto& q : queues_) {
    Queue* raw = q.get();
    {
      absl::MutexLock qlock(&raw->mu);
      raw->thread_exited.assign(raw->options.concurrency, false);
      raw->thread_in_job.assign(raw->options.concurrency, false);
    }
    for (int i = 0; i < raw->options.concurrency; ++i) {
      raw->handler_threads.emplace_back([self, raw, i] {
        t_worker_thread_of = self.get();
        self->HandlerLoop(raw, static_cast<size_t>(i));
      });
    }
    raw->lease_thread = std::thread([self, raw] {
      t_worker_thread_of = self.get();
      self->LeaseLoop(raw);
    });
    absl::StrAppend(&queue_names, queue_names.empty() ? "" : ",", raw->name,
                    ":", raw->options.concurrency);
  }
  log_.Info("worker_started",
            {{"worker_id", worker_id_}, {"queues", queue_names}});
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Leasing.

void WorkerCore::LeaseLoop(Queue* q) {
  Backoff backoff(options_.reconnect_backoff);
  bool failing = false;
  while (true) {
    int free_slots = 0;
    {
      absl::MutexLock lock(&q->mu);
      auto can_lease = [q]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu) {
        return q->leasing_stopped || q->busy < q->options.concurrency;
      };
      q->mu.Await(absl::Condition(&can_lease));
      if (q->leasing_stopped) return;
      free_slots = q->options.concurrency - q->busy;
    }

    v1::LeaseRequest request;
    request.set_queue(q->name);
    request.set_max_jobs(std::min(free_slots, kMaxLeaseBatch));
    wire::ToProto(q->options.max_wait, request.mutable_wait());
    wire::ToProto(q->options.visibility_timeout,
                  request.mutable_visibility_timeout());
    request.set_worker_id(worker_id_);

    grpc::ClientContext context;
    connection_->Prepare(
        &context, absl::Now() + q->options.max_wait + kLeaseDeadlineMargin);
    {
      absl::MutexLock lock(&q->mu);
      if (q->leasing_stopped) return;
      q->lease_context = &context;
    }
    v1::LeaseResponse response;
    const grpc::Status rpc =
        connection_->Pick().stub->Lease(&context, request, &response);
    bool stopped = false;
    {
      absl::MutexLock lock(&q->mu);
      q->lease_context = nullptr;
      stopped = q->leasing_stopped;
    }

    if (!rpc.ok()) {
      // Cancelled by Stop(): the server leases nothing for a cancelled call.
      if (stopped) return;
      const absl::Status status = FromGrpc(rpc);
      Observe([&](WorkerObserver& o) { o.OnLeaseError(q->name, status); });
      const absl::Duration delay = backoff.Next();
      log_.Warn("lease_failed", {{"queue", q->name},
                                 {"code", CodeName(status.code())},
                                 {"error", std::string(status.message())},
                                 {"attempt", absl::StrCat(backoff.attempt())},
                                 {"retry_in_ms", Ms(delay)}});
      failing = true;
      absl::MutexLock lock(&q->mu);
      auto stopped_cond = [q]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu) {
        return q->leasing_stopped;
      };
      q->mu.AwaitWithTimeout(absl::Condition(&stopped_cond), delay);
      continue;
    }
    if (failing) {
      log_.Info("lease_recovered",
                {{"queue", q->name},
                 {"after_attempts", absl::StrCat(backoff.attempt())}});
      failing = false;
    }
    backoff.Reset();
    const int count = response.jobs_size();
    Observe([&](WorkerObserver& o) { o.OnLeased(q->name, count); });
    if (count == 0) continue;

    std::vector<ActiveJobPtr> jobs;
    jobs.reserve(count);
    const absl::Time now = absl::Now();
    for (const v1::LeasedJob& leased : response.jobs()) {
      auto job = std::make_shared<ActiveJob>();
      job->job = FromProto(leased, job->cancel.token());
      if (job->job.queue.empty()) job->job.queue = q->name;
      job->lease_id = leased.lease_id();
      job->visibility_timeout = q->options.visibility_timeout;
      // Local clock, so skew between hosts cannot shorten settle retries.
      job->lease_expires_at = now + q->options.visibility_timeout;
      job->next_extend_at = now + ExtensionInterval(job->visibility_timeout);
      jobs.push_back(std::move(job));
    }
    Track(jobs);

    std::vector<ActiveJobPtr> give_back;
    {
      absl::MutexLock lock(&q->mu);
      for (ActiveJobPtr& job : jobs) {
        if (q->leasing_stopped || q->busy >= q->options.concurrency) {
          give_back.push_back(std::move(job));
        } else {
          q->ready.push_back(std::move(job));
          ++q->busy;
        }
      }
    }
    for (const ActiveJobPtr& job : give_back) {
      // Only on a race with Stop() or a server that ignored max_jobs.
      HandBack(job, "worker stopping: job leased but not started");
    }
  }
}

// ---------------------------------------------------------------------------
// Running handlers.

void WorkerCore::HandlerLoop(Queue* q, size_t index) {
  while (true) {
    ActiveJobPtr job;
    {
      absl::MutexLock lock(&q->mu);
      auto has_work = [q]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu) {
        return !q->ready.empty() || q->handlers_exit;
      };
      q->mu.Await(absl::Condition(&has_work));
      if (q->ready.empty()) {
        q->thread_exited[index] = true;
        return;
      }
      job = std::move(q->ready.front());
      q->ready.pop_front();
      q->thread_in_job[index] = true;
    }
    RunJob(q, job);
    absl::MutexLock lock(&q->mu);
    q->thread_in_job[index] = false;
    --q->busy;
  }
}

void WorkerCore::RunJob(Queue* q, const ActiveJobPtr& job) {
  {
    absl::MutexLock lock(&jobs_mu_);
    if (!job->abandoned && !job->lease_lost) {
      job->phase = ActiveJob::Phase::kRunning;
    } else {
      tracked_.erase(job.get());
      return;
    }
  }
  Observe([&](WorkerObserver& o) { o.OnJobStarted(job->job); });
  const absl::Time started = absl::Now();
  bool threw = false;
  Outcome outcome = Outcome::Success();
  try {
    outcome = q->handler->Handle(job->job);
  } catch (...) {
    threw = true;
    outcome = OutcomeFromException(std::current_exception());
  }
  const absl::Duration took = absl::Now() - started;
  if (threw) {
    const absl::Status status = absl::UnknownError(outcome.error());
    log_.Warn("handler_exception", {{"queue", q->name},
                                    {"job_id", job->job.id},
                                    {"attempt", absl::StrCat(job->job.attempt)},
                                    {"error", outcome.error()}});
    Observe([&](WorkerObserver& o) {
      o.OnJobFailed(job->job, JobFailure::kHandlerException, status);
    });
  }
  Observe([&](WorkerObserver& o) { o.OnJobFinished(job->job, outcome, took); });

  const char* discard_reason = nullptr;
  {
    absl::MutexLock lock(&jobs_mu_);
    if (job->abandoned || job->lease_lost) {
      discard_reason =
          job->abandoned ? "handed_back_at_shutdown" : "lease_lost";
      tracked_.erase(job.get());
    } else {
      job->phase = ActiveJob::Phase::kSettling;
    }
  }
  if (discard_reason != nullptr) {
    log_.Info("outcome_discarded",
              {{"queue", q->name},
               {"job_id", job->job.id},
               {"outcome", Outcome::KindName(outcome.kind())},
               {"reason", discard_reason}});
    return;
  }

  SettleAction action = ToSettleAction(outcome);
  if (action.kind == SettleAction::Kind::kAck) {
    AddAck(job, std::move(action.result));
    return;
  }
  if (action.dead_letter) {
    log_.Warn("job_failed", {{"queue", q->name},
                             {"job_id", job->job.id},
                             {"attempt", absl::StrCat(job->job.attempt)},
                             {"error", action.error}});
  } else if (!threw) {
    log_.Info("job_retry", {{"queue", q->name},
                            {"job_id", job->job.id},
                            {"attempt", absl::StrCat(job->job.attempt)},
                            {"delay_ms", action.retry_delay.has_value()
                                             ? Ms(*action.retry_delay)
                                             : std::string("queue_backoff")},
                            {"error", action.error}});
  }
  (void)SendNack(job, action);
  Untrack(job);
}

// ---------------------------------------------------------------------------
// Settling: nacks.

absl::Duration WorkerCore::RpcTimeout(absl::Duration visibility_timeout) {
  return std::clamp(visibility_timeout / 3, absl::Milliseconds(500),
                    absl::Seconds(5));
}

absl::Time WorkerCore::SettleGiveUpTime(const ActiveJob& job) {
  absl::MutexLock lock(&jobs_mu_);
  return std::min(job.lease_expires_at, settle_give_up_at_);
}

void WorkerCore::ReportFailure(const ActiveJob& job, JobFailure failure,
                               const absl::Status& status) {
  Observe([&](WorkerObserver& o) { o.OnJobFailed(job.job, failure, status); });
}

absl::Status WorkerCore::SendNack(const ActiveJobPtr& job,
                                  const SettleAction& action) {
  v1::NackRequest request;
  request.set_job_id(job->job.id);
  request.set_lease_id(job->lease_id);
  if (action.retry_delay.has_value()) {
    wire::ToProto(*action.retry_delay, request.mutable_retry_delay());
  }
  request.set_error(action.error);
  request.set_dead_letter(action.dead_letter);

  Backoff backoff(options_.reconnect_backoff);
  bool maybe_applied = false;
  while (true) {
    absl::Time rpc_deadline = absl::Now() + RpcTimeout(job->visibility_timeout);
    {
      // Past Stop()'s budget, do not even try: the job comes back after its
      // visibility timeout anyway.
      absl::ReleasableMutexLock lock(&jobs_mu_);
      if (settle_give_up_at_ != absl::InfiniteFuture()) {
        if (absl::Now() >= settle_give_up_at_) {
          lock.Release();
          const absl::Status status =
              absl::DeadlineExceededError("shutdown flush budget spent");
          log_.Error("nack_abandoned",
                     {{"queue", job->job.queue},
                      {"job_id", job->job.id},
                      {"error", std::string(status.message())},
                      {"note", "job returns after its visibility timeout"}});
          ReportFailure(*job, JobFailure::kSettleFailed, status);
          return status;
        }
        rpc_deadline = std::min(
            rpc_deadline, std::max(settle_give_up_at_,
                                   absl::Now() + absl::Milliseconds(200)));
      }
    }
    grpc::ClientContext context;
    connection_->Prepare(&context, rpc_deadline);
    v1::NackResponse response;
    const grpc::Status rpc =
        connection_->Pick().stub->Nack(&context, request, &response);
    if (rpc.ok()) return absl::OkStatus();
    const absl::Status status = FromGrpc(rpc);
    const ItemVerdict verdict =
        ClassifyItemCode(static_cast<int>(status.code()));
    if (verdict == ItemVerdict::kLeaseLost ||
        verdict == ItemVerdict::kNotFound) {
      if (maybe_applied) {
        // An earlier try probably landed; the lease is settled either way.
        log_.Info("nack_outcome_uncertain",
                  {{"queue", job->job.queue},
                   {"job_id", job->job.id},
                   {"code", CodeName(status.code())}});
        return absl::OkStatus();
      }
      log_.Warn("lease_lost", {{"queue", job->job.queue},
                               {"job_id", job->job.id},
                               {"during", "nack"},
                               {"code", CodeName(status.code())},
                               {"error", std::string(status.message())}});
      ReportFailure(*job, JobFailure::kLeaseLost, status);
      return status;
    }
    if (IsTransient(status.code())) {
      maybe_applied = true;
      const absl::Duration delay = backoff.Next();
      const absl::Time give_up = SettleGiveUpTime(*job);
      if (absl::Now() + delay >= give_up) {
        log_.Error("nack_abandoned",
                   {{"queue", job->job.queue},
                    {"job_id", job->job.id},
                    {"code", CodeName(status.code())},
                    {"error", std::string(status.message())},
                    {"attempts", absl::StrCat(backoff.attempt())},
                    {"note", "job returns after its visibility timeout"}});
        ReportFailure(*job, JobFailure::kSettleFailed, status);
        return status;
      }
      log_.Warn("nack_retry", {{"queue", job->job.queue},
                               {"job_id", job->job.id},
                               {"code", CodeName(status.code())},
                               {"error", std::string(status.message())},
                               {"retry_in_ms", Ms(delay)}});
      absl::SleepFor(delay);
      continue;
    }
    log_.Error("nack_rejected", {{"queue", job->job.queue},
                                 {"job_id", job->job.id},
                                 {"code", CodeName(status.code())},
                                 {"error", std::string(status.message())}});
    ReportFailure(*job, JobFailure::kSettleFailed, status);
    return status;
  }
}

void WorkerCore::HandBack(const ActiveJobPtr& job, const std::string& reason) {
  {
    absl::MutexLock lock(&jobs_mu_);
    job->abandoned = true;
  }
  job->cancel.Cancel();
  (void)SendNack(job, HandBackAction(reason));
  Untrack(job);
}

// ---------------------------------------------------------------------------
// Lease extension.

void WorkerCore::Track(const std::vector<ActiveJobPtr>& jobs) {
  absl::MutexLock lock(&jobs_mu_);
  for (const ActiveJobPtr& job : jobs) tracked_[job.get()] = job;
  ++tracked_version_;
}

void WorkerCore::Untrack(const ActiveJobPtr& job) {
  absl::MutexLock lock(&jobs_mu_);
  tracked_.erase(job.get());
}

void WorkerCore::ExtendLoop() {
  uint64_t seen_version = 0;
  while (true) {
    std::vector<ActiveJobPtr> due;
    {
      absl::MutexLock lock(&jobs_mu_);
      while (true) {
        if (extend_stop_) return;
        const absl::Time now = absl::Now();
        absl::Time earliest = absl::InfiniteFuture();
        for (const auto& [ptr, job] : tracked_) {
          if (job->lease_lost || job->abandoned) continue;
          if (job->next_extend_at <= now) {
            due.push_back(job);
          } else {
            earliest = std::min(earliest, job->next_extend_at);
          }
        }
        if (!due.empty()) break;
        seen_version = tracked_version_;
        auto changed =
            [this, seen_version]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(jobs_mu_) {
              return extend_stop_ || tracked_version_ != seen_version;
            };
        // Wake at least once a second: never sleep forever on a stale view.
        jobs_mu_.AwaitWithDeadline(
            absl::Condition(&changed),
            std::min(earliest, absl::Now() + absl::Seconds(1)));
      }
    }
    for (const ActiveJobPtr& job : due) ExtendOne(job);
  }
}

void WorkerCore::ExtendOne(const ActiveJobPtr& job) {
  v1::ExtendLeaseRequest request;
  request.set_job_id(job->job.id);
  request.set_lease_id(job->lease_id);
  wire::ToProto(job->visibility_timeout, request.mutable_visibility_timeout());
  grpc::ClientContext context;
  connection_->Prepare(&context,
                       absl::Now() + RpcTimeout(job->visibility_timeout));
  v1::ExtendLeaseResponse response;
  const grpc::Status rpc =
      connection_->Pick().stub->ExtendLease(&context, request, &response);
  const absl::Time now = absl::Now();
  const absl::Duration interval = ExtensionInterval(job->visibility_timeout);
  if (rpc.ok()) {
    absl::MutexLock lock(&jobs_mu_);
    job->lease_expires_at = now + job->visibility_timeout;
    job->next_extend_at = now + interval;
    return;
  }
  const absl::Status status = FromGrpc(rpc);
  const ItemVerdict verdict = ClassifyItemCode(static_cast<int>(status.code()));
  if (verdict == ItemVerdict::kLeaseLost || verdict == ItemVerdict::kNotFound) {
    bool report = false;
    {
      absl::MutexLock lock(&jobs_mu_);
      // While settling, the ack/nack itself reports what happened (and a
      // NOT_FOUND there usually means our ack just landed).
      report = job->phase != ActiveJob::Phase::kSettling && !job->abandoned;
      job->lease_lost = true;
    }
    if (!report) return;
    job->cancel.Cancel();
    log_.Warn("lease_lost", {{"queue", job->job.queue},
                             {"job_id", job->job.id},
                             {"during", "extend"},
                             {"code", CodeName(status.code())},
                             {"error", std::string(status.message())}});
    Observe([&](WorkerObserver& o) {
      o.OnLeaseExtensionFailed(job->job, status);
      o.OnJobFailed(job->job, JobFailure::kLeaseLost, status);
    });
    return;
  }
  // Transient (or unexpected): try again soon, well before the lease ends.
  {
    absl::MutexLock lock(&jobs_mu_);
    job->next_extend_at = now + std::min(interval / 4, absl::Seconds(1));
  }
  log_.Warn("extend_failed", {{"queue", job->job.queue},
                              {"job_id", job->job.id},
                              {"code", CodeName(status.code())},
                              {"error", std::string(status.message())}});
  Observe(
      [&](WorkerObserver& o) { o.OnLeaseExtensionFailed(job->job, status); });
}

// ---------------------------------------------------------------------------
// Acks.

void WorkerCore::AddAck(const ActiveJobPtr& job, std::string result) {
  {
    absl::MutexLock lock(&ack_mu_);
    if (!ack_stop_) {
      acks_.Add(PendingAck{job, std::move(result)}, absl::Now());
      return;
    }
  }
  // Only if a handler outlived Stop()'s ack flush.
  const absl::Status status = absl::CancelledError("worker stopped");
  log_.Error("ack_dropped", {{"queue", job->job.queue},
                             {"job_id", job->job.id},
                             {"reason", "worker already stopped"}});
  ReportFailure(*job, JobFailure::kSettleFailed, status);
  Untrack(job);
}

void WorkerCore::AckLoop() {
  Backoff backoff(options_.reconnect_backoff);
  while (true) {
    std::vector<PendingAck> batch;
    absl::Time oldest = absl::Now();
    {
      absl::MutexLock lock(&ack_mu_);
      while (true) {
        if (ack_stop_) return;
        const absl::Time now = absl::Now();
        if (!acks_.empty() && (ack_draining_ || acks_.FlushDue(now))) break;
        if (acks_.empty()) {
          // Wake on the first completion, to start its flush delay.
          auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ack_mu_) {
            return ack_stop_ || !acks_.empty();
          };
          ack_mu_.AwaitWithDeadline(absl::Condition(&wake),
                                    now + absl::Seconds(1));
        } else {
          // Wake when the delay runs out, a batch fills up, or Stop drains.
          auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ack_mu_) {
            return ack_stop_ || ack_draining_ || acks_.FlushDue(absl::Now());
          };
          ack_mu_.AwaitWithDeadline(absl::Condition(&wake),
                                    acks_.NextFlushTime());
        }
      }
      batch = acks_.Take(absl::Now(), /*force=*/true, &oldest);
      ++acks_in_flight_;
    }

    v1::AckRequest request;
    for (const PendingAck& p : batch) {
      v1::Completion* c = request.add_completions();
      c->set_job_id(p.job->job.id);
      c->set_lease_id(p.job->lease_id);
      c->set_result(p.result);
    }
    absl::Time rpc_deadline = absl::Now() + kAckRpcTimeout;
    {
      // While stopping, an Ack must not outlive the flush budget by much.
      absl::MutexLock lock(&ack_mu_);
      if (ack_draining_) {
        rpc_deadline = std::min(
            rpc_deadline,
            std::max(ack_give_up_at_, absl::Now() + absl::Milliseconds(500)));
      }
    }
    grpc::ClientContext context;
    connection_->Prepare(&context, rpc_deadline);
    v1::AckResponse response;
    const grpc::Status rpc =
        connection_->Pick().stub->Ack(&context, request, &response);

    if (rpc.ok()) {
      backoff.Reset();
      const absl::Duration latency = absl::Now() - oldest;
      const int size = static_cast<int>(batch.size());
      ProcessAckResults(batch, response);
      Observe([&](WorkerObserver& o) { o.OnAckLatency(latency, size); });
      absl::MutexLock lock(&ack_mu_);
      --acks_in_flight_;
      continue;
    }

    const absl::Status status = FromGrpc(rpc);
    std::vector<PendingAck> retry;
    std::vector<PendingAck> give_up;
    absl::Time give_up_at;
    {
      absl::MutexLock lock(&ack_mu_);
      give_up_at = ack_give_up_at_;
    }
    const absl::Duration delay = backoff.Next();
    const bool out_of_time = absl::Now() + delay >= give_up_at;
    for (PendingAck& p : batch) {
      p.maybe_applied = true;
      ++p.failures;
      const bool keep =
          IsTransient(status.code()) && !out_of_time &&
          (IsUnreachable(status.code()) || p.failures < kMaxAckFailures);
      (keep ? retry : give_up).push_back(std::move(p));
    }
    if (!retry.empty()) {
      log_.Warn("ack_retry", {{"jobs", absl::StrCat(retry.size())},
                              {"code", CodeName(status.code())},
                              {"error", std::string(status.message())},
                              {"retry_in_ms", Ms(delay)}});
    }
    for (PendingAck& p : give_up) {
      log_.Error("ack_abandoned",
                 {{"queue", p.job->job.queue},
                  {"job_id", p.job->job.id},
                  {"code", CodeName(status.code())},
                  {"error", std::string(status.message())},
                  {"note", "job returns after its visibility timeout"}});
      ReportFailure(*p.job, JobFailure::kSettleFailed, status);
      Untrack(p.job);
    }
    absl::MutexLock lock(&ack_mu_);
    if (!retry.empty()) acks_.Requeue(std::move(retry), oldest);
    --acks_in_flight_;
    if (!acks_.empty()) {
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ack_mu_) {
        return ack_stop_;
      };
      ack_mu_.AwaitWithTimeout(absl::Condition(&stop), delay);
    }
  }
}

void WorkerCore::ProcessAckResults(std::vector<PendingAck>& batch,
                                   const v1::AckResponse& response) {
  for (size_t i = 0; i < batch.size(); ++i) {
    PendingAck& p = batch[i];
    if (i >= static_cast<size_t>(response.results_size())) {
      const absl::Status status = absl::InternalError(
          "Ack response has fewer results than completions");
      log_.Error("ack_result_missing",
                 {{"queue", p.job->job.queue}, {"job_id", p.job->job.id}});
      ReportFailure(*p.job, JobFailure::kSettleFailed, status);
      Untrack(p.job);
      continue;
    }
    const v1::ItemResult& item = response.results(static_cast<int>(i));
    const ItemVerdict verdict = ClassifyItemCode(item.code());
    const absl::Status status(static_cast<absl::StatusCode>(item.code()),
                              item.message());
    switch (verdict) {
      case ItemVerdict::kOk:
        break;
      case ItemVerdict::kLeaseLost:
      case ItemVerdict::kNotFound:
        if (p.maybe_applied && AckProbablyApplied(*p.job)) {
          log_.Info("ack_confirmed_after_retry",
                    {{"queue", p.job->job.queue}, {"job_id", p.job->job.id}});
          break;
        }
        log_.Warn("lease_lost", {{"queue", p.job->job.queue},
                                 {"job_id", p.job->job.id},
                                 {"during", "ack"},
                                 {"code", CodeName(status.code())},
                                 {"error", item.message()}});
        ReportFailure(*p.job, JobFailure::kLeaseLost, status);
        break;
      case ItemVerdict::kRejected:
        log_.Error("ack_rejected", {{"queue", p.job->job.queue},
                                    {"job_id", p.job->job.id},
                                    {"code", CodeName(status.code())},
                                    {"error", item.message()}});
        ReportFailure(*p.job, JobFailure::kSettleFailed, status);
        break;
    }
    Untrack(p.job);
  }
}

bool WorkerCore::AckProbablyApplied(const ActiveJob& job) {
  v1::GetJobRequest request;
  request.set_job_id(job.job.id);
  grpc::ClientContext context;
  connection_->Prepare(&context, absl::Now() + absl::Seconds(5));
  v1::Job response;
  const grpc::Status rpc =
      connection_->Pick().stub->GetJob(&context, request, &response);
  if (rpc.error_code() == grpc::StatusCode::NOT_FOUND) return true;
  return rpc.ok() && response.state() == v1::JOB_STATE_SUCCEEDED;
}

// ---------------------------------------------------------------------------
// Shutdown.

absl::Status WorkerCore::Stop(absl::Duration deadline) {
  if (t_worker_thread_of == this) {
    return absl::FailedPreconditionError(
        "Worker::Stop() was called from the worker's own thread (a handler or "
        "an observer callback); it waits for those threads to finish, so "
        "call it from another thread");
  }
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&state_mu_);
    if (state_ == State::kIdle) {
      state_ = State::kStopped;
      return absl::OkStatus();
    }
    if (state_ == State::kStopped) return stop_status_;
    state_ = State::kStopping;
  }
  const absl::Time stop_started = absl::Now();
  const absl::Time handlers_deadline =
      stop_started + std::max(deadline, absl::ZeroDuration());
  {
    absl::MutexLock lock(&jobs_mu_);
    settle_give_up_at_ = handlers_deadline + options_.shutdown_flush_timeout;
  }
  log_.Info("worker_stopping",
            {{"worker_id", worker_id_}, {"deadline_ms", Ms(deadline)}});

  // 1. Stop leasing; a cancelled Lease leases nothing.
  for (auto& q : queues_) {
    absl::MutexLock lock(&q->mu);
    q->leasing_stopped = true;
    if (q->lease_context != nullptr) q->lease_context->TryCancel();
  }
  for (auto& q : queues_) {
    if (q->lease_thread.joinable()) q->lease_thread.join();
  }

  // 2. Hand back what was leased but not started.
  int handed_back_queued = 0;
  for (auto& q : queues_) {
    std::deque<ActiveJobPtr> queued;
    {
      absl::MutexLock lock(&q->mu);
      queued.swap(q->ready);
      q->busy -= static_cast<int>(queued.size());
    }
    for (const ActiveJobPtr& job : queued) {
      HandBack(job, "worker stopping: job leased but not started");
      ++handed_back_queued;
    }
  }

  // 3. Let running handlers finish until the deadline.
  auto wait_idle = [this](absl::Time until) {
    for (auto& q : queues_) {
      absl::MutexLock lock(&q->mu);
      auto idle = [&q]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu) {
        return q->busy <= 0;
      };
      if (!q->mu.AwaitWithDeadline(absl::Condition(&idle), until)) {
        return false;
      }
    }
    return true;
  };
  wait_idle(handlers_deadline);

  // 4. Cancel the stragglers and hand their jobs back at once.
  std::vector<ActiveJobPtr> stragglers;
  {
    absl::MutexLock lock(&jobs_mu_);
    for (const auto& [ptr, job] : tracked_) {
      if (job->phase == ActiveJob::Phase::kRunning && !job->abandoned &&
          !job->lease_lost) {
        job->abandoned = true;
        stragglers.push_back(job);
      }
    }
  }
  for (const ActiveJobPtr& job : stragglers) job->cancel.Cancel();
  for (const ActiveJobPtr& job : stragglers) {
    log_.Warn("job_handed_back",
              {{"queue", job->job.queue},
               {"job_id", job->job.id},
               {"reason", "handler still running at stop deadline"}});
    HandBack(job, "worker stopping: handler still running at stop deadline");
  }

  // 5. Let handler threads return (cancelled handlers should be quick).
  for (auto& q : queues_) {
    absl::MutexLock lock(&q->mu);
    q->handlers_exit = true;
  }
  wait_idle(absl::Now() + options_.cancel_grace);

  // 6. Flush acks, retrying while spoold is unreachable, within the budget.
  int acks_left = 0;
  {
    absl::MutexLock lock(&ack_mu_);
    ack_draining_ = true;
    // The flush budget is shared with the nacks above, but acks (earned
    // work) always get at least a second of their own.
    ack_give_up_at_ =
        std::max(handlers_deadline + options_.shutdown_flush_timeout,
                 absl::Now() + absl::Seconds(1));
    auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ack_mu_) {
      return acks_.empty() && acks_in_flight_ == 0;
    };
    ack_mu_.AwaitWithDeadline(absl::Condition(&drained),
                              ack_give_up_at_ + absl::Seconds(2));
    acks_left = static_cast<int>(acks_.size()) + acks_in_flight_;
    ack_stop_ = true;
  }
  // An Ack RPC in flight ends by its own deadline.
  if (ack_thread_.joinable()) ack_thread_.join();
  {
    // Whatever the flush could not deliver.
    absl::MutexLock lock(&ack_mu_);
    absl::Time ignored;
    for (PendingAck& p : acks_.Take(absl::Now(), true, &ignored)) {
      log_.Error("ack_abandoned", {{"queue", p.job->job.queue},
                                   {"job_id", p.job->job.id},
                                   {"note", "shutdown flush timed out"}});
      ReportFailure(*p.job, JobFailure::kSettleFailed,
                    absl::DeadlineExceededError("shutdown flush timed out"));
    }
  }

  // 7. No more leases to extend.
  {
    absl::MutexLock lock(&jobs_mu_);
    extend_stop_ = true;
  }
  if (extend_thread_.joinable()) extend_thread_.join();

  // 8. Join handler threads that returned; leave the others behind (they
  // keep this core alive through their shared_ptr).
  int left_behind = 0;
  for (auto& q : queues_) {
    std::vector<bool> in_job;
    {
      absl::MutexLock lock(&q->mu);
      in_job = q->thread_in_job;
    }
    for (size_t i = 0; i < q->handler_threads.size(); ++i) {
      std::thread& t = q->handler_threads[i];
      if (!t.joinable()) continue;
      if (!in_job[i]) {
        t.join();  // idle: handlers_exit makes it return at once
      } else {
        t.detach();
        ++left_behind;
      }
    }
  }

  absl::Status status;
  if (!stragglers.empty() || acks_left > 0 || left_behind > 0) {
    status = absl::DeadlineExceededError(
        absl::StrCat("stop deadline passed: ", stragglers.size(),
                     " running job(s) cancelled and handed back, ", acks_left,
                     " ack(s) not delivered, ", left_behind,
                     " handler thread(s) still running"));
  }
  log_.Info("worker_stopped",
            {{"worker_id", worker_id_},
             {"took_ms", Ms(absl::Now() - stop_started)},
             {"handed_back_queued", absl::StrCat(handed_back_queued)},
             {"handed_back_running", absl::StrCat(stragglers.size())},
             {"acks_not_delivered", absl::StrCat(acks_left)},
             {"threads_left_behind", absl::StrCat(left_behind)}});
  absl::MutexLock lock(&state_mu_);
  state_ = State::kStopped;
  stop_status_ = status;
  return status;
}

}  // namespace spool::internal
