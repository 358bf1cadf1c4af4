#include "core/job_queue.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "core/fencing.h"
#include "core/timer.h"

namespace spool::core {
namespace {

// Why a fenced change on `job_id` was refused: the job is unknown, or whose
// lease it is now (read after the refusal, for the message only).
absl::Status RefusalReason(StoreSession* s, int64_t job_id,
                           const std::string& lease_id) {
  auto lease = s->GetJobLease(job_id);
  if (!lease.ok()) return lease.status();
  return LeaseMismatchStatus(job_id, lease->state, lease->lease_id == lease_id);
}

std::string JobField(bool batch, size_t i) {
  return batch ? absl::StrCat("jobs[", i, "]") : std::string("job");
}

Maintenance::Options MaintenanceOptions(const JobQueueOptions& o) {
  Maintenance::Options m;
  m.interval = o.maintenance_interval;
  m.retention_interval = o.retention_interval;
  m.batch = o.maintenance_batch;
  return m;
}

}  // namespace

JobQueue::JobQueue(Executor* executor, JobQueueOptions options,
                   Observer* observer, Clock* clock, ListenerFactory listen)
    : executor_(executor),
      options_(std::move(options)),
      observer_(observer != nullptr ? observer : &null_observer_),
      own_clock_(clock == nullptr ? std::make_unique<Timer>() : nullptr),
      clock_(clock != nullptr ? clock : own_clock_.get()),
      listen_(std::move(listen)),
      configs_(clock_, options_.queue_config_ttl),
      notifier_(executor_, clock_,
                {options_.notify_channel, options_.replica_id,
                 options_.notify_interval}),
      maintenance_(executor_, clock_, observer_, MaintenanceOptions(options_),
                   [this](const std::string& queue, int64_t jobs) {
                     JobsReady(queue, jobs, true);
                   }),
      health_(executor_, clock_, options_.health_interval) {
  poll_context_.executor = executor_;
  poll_context_.clock = clock_;
  poll_context_.hub = &hub_;
  poll_context_.observer = observer_;
  poll_context_.configs = &configs_;
  poll_context_.shutting_down = &shutting_down_;
  poll_context_.released = [this](const std::string& queue, int64_t jobs) {
    JobsReady(queue, jobs, true);
  };
  typename GroupCommit<PendingEnqueue>::Options eo;
  eo.max_in_flight = options_.group_commit_in_flight;
  enqueues_ = std::make_unique<GroupCommit<PendingEnqueue>>(
      executor_, eo,
      [](const PendingEnqueue& p) {
        size_t bytes = 0;
        for (const JobInput& j : p.jobs) bytes += j.payload.size();
        return std::make_pair(p.jobs.size(), bytes);
      },
      [this](absl::StatusOr<StoreSession*> s,
             std::vector<PendingEnqueue>& group) {
        ProcessEnqueues(s, group);
      });
  typename GroupCommit<PendingAck>::Options ao;
  ao.max_in_flight = options_.group_commit_in_flight;
  acks_ = std::make_unique<GroupCommit<PendingAck>>(
      executor_, ao,
      [](const PendingAck& p) {
        size_t bytes = 0;
        for (const Completion& c : p.completions.valid)
          bytes += c.result.size();
        return std::make_pair(p.completions.valid.size(), bytes);
      },
      [this](absl::StatusOr<StoreSession*> s, std::vector<PendingAck>& group) {
        ProcessAcks(s, group);
      });
}

JobQueue::~JobQueue() { Stop(); }

void JobQueue::Start() {
  if (options_.listen && listen_) {
    NotificationListener::Options lo;
    lo.channel = options_.notify_channel;
    lo.on_notify = [this](const std::string& payload) {
      OnNotification(payload);
    };
    // Notifications sent while disconnected are lost: look again everywhere.
    lo.on_reconnect = [this] { hub_.NotifyEachQueue(); };
    listener_ = listen_(std::move(lo));
    listener_->Start();
  }
  health_.Start();
  maintenance_.Start();
  ScheduleFallbackPoll();
}

void JobQueue::BeginShutdown() {
  shutting_down_ = true;
  for (auto& waiter : hub_.TakeAll()) {
    static_cast<PollCall*>(waiter.get())->FinishEmpty();
  }
}

void JobQueue::Stop() {
  if (stopped_.exchange(true)) return;
  BeginShutdown();
  maintenance_.Stop();
  health_.Stop();
  clock_->Shutdown();
  if (listener_) listener_->Stop();
}

void JobQueue::SetHealthCallback(absl::AnyInvocable<void(bool)> fn) {
  health_.SetCallback(std::move(fn));
}

double JobQueue::RandomUnit() {
  thread_local absl::BitGen gen;
  return absl::Uniform(gen, 0.0, 1.0);
}

void JobQueue::Enqueue(std::vector<JobInput> jobs, bool batch,
                       Callback<std::vector<EnqueueResult>> done) {
  const Limits& limits = options_.limits;
  if (absl::Status s = ValidateEnqueueBatchSize(jobs.size(), limits); !s.ok()) {
    done(s);
    return;
  }
  if (jobs.empty()) {
    done(std::vector<EnqueueResult>());
    return;
  }
  const absl::Time now = clock_->Now();
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (absl::Status s = ValidateJob(jobs[i], limits, now, JobField(batch, i));
        !s.ok()) {
      done(s);
      return;
    }
  }
  enqueues_->Add(PendingEnqueue{std::move(jobs), std::move(done)});
}

void JobQueue::ProcessEnqueues(absl::StatusOr<StoreSession*> session,
                               std::vector<PendingEnqueue>& group) {
  if (!session.ok()) {
    for (PendingEnqueue& p : group) p.done(session.status());
    return;
  }
  StoreSession* s = *session;
  EnqueueRequests requests;
  requests.reserve(group.size());
  for (PendingEnqueue& p : group) requests.push_back(&p.jobs);
  // Settings of each distinct queue.
  QueueConfigs configs;
  for (const PendingEnqueue& p : group) {
    for (const JobInput& j : p.jobs) {
      if (configs.contains(j.queue)) continue;
      auto config = configs_.Get(s, j.queue);
      if (!config.ok()) {
        for (PendingEnqueue& q : group) q.done(config.status());
        return;
      }
      configs.emplace(j.queue, *std::move(config));
    }
  }
  const absl::flat_hash_map<std::string, int64_t> limited =
      DepthLimitedWants(requests, configs);
  EnqueuePlan plan;
  const absl::Time start = clock_->Now();
  absl::StatusOr<std::vector<EnqueueResult>> inserted =
      InsertPlanned(s, requests, configs, limited, plan);
  observer_->OnDatabaseRoundTrip("enqueue", clock_->Now() - start);
  observer_->OnEnqueueBatch(static_cast<int64_t>(plan.rows.size()));
  if (!inserted.ok()) {
    // Nothing was written; a request refused for depth keeps its answer.
    for (size_t r = 0; r < group.size(); ++r) {
      group[r].done(plan.refused.size() > r && !plan.refused[r].ok()
                        ? plan.refused[r]
                        : inserted.status());
    }
    return;
  }
  for (size_t r = 0; r < group.size(); ++r) {
    if (!plan.refused[r].ok()) group[r].done(plan.refused[r]);
  }
  EnqueueOutcome outcome = AnswerEnqueue(plan, *inserted);
  // Counted before the answers leave (a client never sees its job
  // uncounted); waking waiters follows the answers.
  for (const auto& [queue, c] : outcome.counts) {
    observer_->OnEnqueued(queue, c.first, c.second);
  }
  for (size_t r = 0; r < group.size(); ++r) {
    if (plan.refused[r].ok()) group[r].done(std::move(outcome.results[r]));
  }
  for (const auto& [queue, n] : outcome.ready) JobsReady(queue, n, true);
  if (outcome.earliest_scheduled != absl::InfiniteFuture()) {
    maintenance_.NoteScheduled(outcome.earliest_scheduled);
  }
}

absl::StatusOr<std::vector<EnqueueResult>> JobQueue::InsertPlanned(
    StoreSession* s, const EnqueueRequests& requests,
    const QueueConfigs& configs,
    const absl::flat_hash_map<std::string, int64_t>& limited,
    EnqueuePlan& plan) {
  absl::StatusOr<std::vector<EnqueueResult>> inserted;
  if (limited.empty()) {
    PlanEnqueue(requests, configs, nullptr, plan);
    inserted = s->Enqueue(plan.rows);
    if (absl::IsAborted(inserted.status())) {
      inserted = s->Enqueue(plan.rows);  // A serialization conflict: again.
    }
    return inserted;
  }
  // Queues with a depth limit make the group one transaction that locks
  // them, so the limit holds exactly across statements in flight and
  // replicas. The plan is made inside it, from the depths it found.
  auto by_depth = [&](const QueueDepths& d) -> const std::vector<NewJob>& {
    PlanEnqueue(requests, configs, &d, plan);
    return plan.rows;
  };
  // The bound is recounted at least as often as settings are reloaded,
  // which takes in what replicas enqueued before they saw a new limit.
  const absl::Duration recount = options_.queue_config_ttl;
  inserted = s->EnqueueWithinDepth(limited, recount, by_depth);
  if (absl::IsAborted(inserted.status())) {
    inserted = s->EnqueueWithinDepth(limited, recount, by_depth);
  }
  return inserted;
}

std::shared_ptr<LeaseCall> JobQueue::Lease(
    LeaseInput input, absl::Time deadline,
    Callback<std::vector<LeasedJob>> done) {
  if (absl::Status s = ValidateLease(input, options_.limits); !s.ok()) {
    done(s);
    return nullptr;
  }
  LeaseParams params;
  params.queue = std::move(input.queue);
  params.max_jobs = input.max_jobs == 0 ? 1 : input.max_jobs;
  params.max_bytes = options_.limits.max_lease_bytes;
  params.worker_id = std::move(input.worker_id);
  const bool default_timeout = !input.visibility_timeout.has_value();
  if (!default_timeout) params.visibility_timeout = *input.visibility_timeout;
  absl::Duration wait = std::min(input.wait.value_or(absl::ZeroDuration()),
                                 options_.limits.max_wait);
  if (shutting_down_) wait = absl::ZeroDuration();
  absl::Time wait_until = clock_->Now() + wait;
  if (deadline != absl::InfiniteFuture()) {
    wait_until = std::min(wait_until, deadline - options_.deadline_margin);
  }
  auto call =
      std::make_shared<PollCall>(&poll_context_, std::move(params),
                                 default_timeout, wait_until, std::move(done));
  call->Start();
  return call;
}

void JobQueue::JobsReady(const std::string& queue, int64_t jobs, bool publish) {
  if (jobs <= 0) return;
  hub_.Notify(queue, jobs);
  if (publish && options_.listen) notifier_.Publish(queue);
}

void JobQueue::OnNotification(const std::string& payload) {
  for (const std::string& queue : notifier_.Parse(payload)) {
    hub_.Notify(queue, 1);
  }
}

void JobQueue::ScheduleFallbackPoll() {
  if (stopped_) return;
  clock_->Schedule(clock_->Now() + options_.fallback_poll, [this] {
    // Every queue with waiters looks once more, in case a wake-up was lost.
    hub_.NotifyEachQueue();
    ScheduleFallbackPoll();
  });
}

void JobQueue::Ack(std::vector<CompletionInput> completions,
                   Callback<std::vector<absl::Status>> done) {
  auto checked = CheckCompletions(std::move(completions), options_.limits);
  if (!checked.ok()) {
    done(checked.status());
    return;
  }
  if (checked->valid.empty()) {
    done(std::move(checked->results));
    return;
  }
  acks_->Add(PendingAck{*std::move(checked), std::move(done)});
}

void JobQueue::ProcessAcks(absl::StatusOr<StoreSession*> session,
                           std::vector<PendingAck>& group) {
  if (!session.ok()) {
    for (PendingAck& p : group) p.done(session.status());
    return;
  }
  std::vector<Completion> all;
  for (PendingAck& p : group) {
    for (Completion& c : p.completions.valid) all.push_back(std::move(c));
  }
  const absl::Time start = clock_->Now();
  auto acked = (*session)->Ack(all);
  observer_->OnDatabaseRoundTrip("ack", clock_->Now() - start);
  observer_->OnAckBatch(static_cast<int64_t>(all.size()));
  if (!acked.ok()) {
    for (PendingAck& p : group) p.done(acked.status());
    return;
  }
  size_t k = 0;
  for (PendingAck& p : group) {
    CheckedCompletions& c = p.completions;
    for (size_t i = 0; i < c.index.size(); ++i, ++k) {
      AckItem& item = (*acked)[k];
      c.results[c.index[i]] = item.status;
      if (item.status.ok()) {
        observer_->OnAcked(item.queue,
                           item.processing.value_or(absl::ZeroDuration()));
      }
    }
    p.done(std::move(c.results));
  }
}

void JobQueue::Nack(NackInput input, Callback<NackResult> done) {
  auto params = CheckNack(std::move(input), options_.limits);
  if (!params.ok()) {
    done(params.status());
    return;
  }
  params->backoff_unit = RandomUnit();
  executor_->Submit([this, params = *std::move(params), done = std::move(done)](
                        absl::StatusOr<StoreSession*> session) mutable {
    if (!session.ok()) {
      done(session.status());
      return;
    }
    StoreSession* s = *session;
    auto result = s->Nack(params);
    if (absl::IsFailedPrecondition(result.status())) {
      done(RefusalReason(s, params.job_id, params.lease_id));
      return;
    }
    if (!result.ok()) {
      done(result.status());
      return;
    }
    const NackResult r = *result;
    observer_->OnNacked(r.queue, r.state == JobState::kDead, r.processing);
    done(std::move(result));
    if (r.state == JobState::kReady) {
      JobsReady(r.queue, 1, true);
    } else if (r.state == JobState::kScheduled && r.next_run_at) {
      maintenance_.NoteScheduled(*r.next_run_at);
    }
  });
}

void JobQueue::ExtendLease(std::string job_id, std::string lease_id,
                           std::optional<absl::Duration> visibility_timeout,
                           Callback<absl::Time> done) {
  auto id =
      CheckExtendLease(job_id, lease_id, visibility_timeout, options_.limits);
  if (!id.ok()) {
    done(id.status());
    return;
  }
  executor_->Submit(
      [this, job = *id, lease_id = std::move(lease_id), visibility_timeout,
       done = std::move(done)](absl::StatusOr<StoreSession*> session) mutable {
        if (!session.ok()) {
          done(session.status());
          return;
        }
        StoreSession* s = *session;
        absl::Duration timeout;
        if (visibility_timeout.has_value()) {
          timeout = *visibility_timeout;
        } else {
          auto lease = s->GetJobLease(job);
          if (!lease.ok()) {
            done(lease.status());
            return;
          }
          auto config = configs_.Get(s, lease->queue);
          if (!config.ok()) {
            done(config.status());
            return;
          }
          timeout = config->visibility_timeout;
        }
        auto expires = s->ExtendLease(job, lease_id, timeout);
        if (absl::IsFailedPrecondition(expires.status())) {
          done(RefusalReason(s, job, lease_id));
          return;
        }
        done(std::move(expires));
      });
}

void JobQueue::GetJob(std::string job_id, Callback<Job> done) {
  auto id = ParseJobId(job_id, "job_id");
  if (!id.ok()) {
    done(id.status());
    return;
  }
  executor_->Submit([job = *id, done = std::move(done)](
                        absl::StatusOr<StoreSession*> session) mutable {
    if (!session.ok()) {
      done(session.status());
      return;
    }
    done((*session)->GetJob(job));
  });
}

}  // namespace spool::core
