#include "core/job_queue.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "core/fencing.h"

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

// NOTIFY payloads are limited to 8000 bytes.
constexpr size_t kMaxNotifyPayload = 7000;

}  // namespace

// One Lease call: tries the lease query, and if it finds nothing and may wait,
// parks itself in the WakeHub until woken, cancelled or out of time.
class JobQueue::PollCall : public LeaseCall,
                           public Waiter,
                           public std::enable_shared_from_this<PollCall> {
 public:
  PollCall(JobQueue* queue, LeaseParams params, bool default_timeout,
           absl::Time wait_until, Callback<std::vector<LeasedJob>> done)
      : jq_(queue),
        params_(std::move(params)),
        default_timeout_(default_timeout),
        wait_until_(wait_until),
        done_(std::move(done)) {}

  void Start() {
    if (wait_until_ > jq_->clock_->Now()) {
      auto self = shared_from_this();
      // Under mu_: the timer may fire (and Finish read timer_id_) at once.
      absl::MutexLock lock(&mu_);
      timer_id_ = jq_->clock_->Schedule(wait_until_, [self] {
        self->Finish(std::vector<LeasedJob>(), /*timed_out=*/true);
      });
    }
    Submit();
  }

  void Cancel() override {
    Finish(absl::CancelledError("the Lease call was cancelled"));
  }

  void Wake() override { Submit(); }
  int Capacity() const override { return params_.max_jobs; }

  // Ends the wait with no jobs (server shutdown).
  void FinishEmpty() { Finish(std::vector<LeasedJob>()); }

 private:
  bool finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }

  void Submit() {
    auto self = shared_from_this();
    jq_->pool_->Submit([self](absl::StatusOr<StoreSession*> session) {
      self->Attempt(session);
    });
  }

  void Attempt(absl::StatusOr<StoreSession*> session) {
    if (finished()) return;
    if (!session.ok()) {
      Finish(session.status());
      return;
    }
    StoreSession* s = *session;
    if (default_timeout_) {
      auto config = jq_->QueueConfigFor(s, params_.queue);
      if (!config.ok()) {
        Finish(config.status());
        return;
      }
      params_.visibility_timeout = config->visibility_timeout;
      default_timeout_ = false;
    }
    const uint64_t generation = jq_->hub_.Generation(params_.queue);
    absl::Time start = jq_->clock_->Now();
    auto jobs = s->Lease(params_);
    jq_->observer_->OnDatabaseRoundTrip("lease", jq_->clock_->Now() - start);
    if (!jobs.ok()) {
      Finish(jobs.status());
      return;
    }
    if (!jobs->empty()) {
      const size_t n = jobs->size();
      // A full batch suggests more: let the next waiter look too.
      if (static_cast<int>(n) == params_.max_jobs) {
        jq_->hub_.Notify(params_.queue, 1);
      }
      std::vector<LeasedJob> copy;
      copy.reserve(n);
      for (const auto& j : *jobs) {
        LeasedJob k;
        k.job_id = j.job_id;
        k.lease_id = j.lease_id;
        copy.push_back(std::move(k));
      }
      jq_->observer_->OnLeaseBatch(params_.queue, static_cast<int64_t>(n));
      for (const auto& j : *jobs) {
        jq_->observer_->OnLeased(
            params_.queue, std::max(absl::ZeroDuration(),
                                    j.lease_expires_at -
                                        params_.visibility_timeout - j.run_at));
      }
      if (!Finish(*std::move(jobs))) {
        // Cancelled or timed out while the query ran: give the jobs back.
        if (s->ReleaseLeases(copy).ok()) {
          jq_->observer_->OnLeasesReleased(params_.queue,
                                           static_cast<int64_t>(n));
          jq_->JobsReady(params_.queue, static_cast<int64_t>(n), true);
        }
      }
      return;
    }
    if (jq_->shutting_down_ || jq_->clock_->Now() >= wait_until_) {
      Finish(std::vector<LeasedJob>());
      return;
    }
    if (!jq_->hub_.Register(params_.queue, generation, shared_from_this())) {
      Submit();  // A job appeared while we looked: look again.
      return;
    }
    // Cancel or time-out may have run before we registered.
    if (finished()) jq_->hub_.Unregister(params_.queue, this);
  }

  // Ends the call once (later calls return false). A timeout is counted
  // before the reply leaves, so a client never sees it uncounted.
  bool Finish(absl::StatusOr<std::vector<LeasedJob>> result,
              bool timed_out = false) {
    Callback<std::vector<LeasedJob>> done;
    Clock::TimerId timer_id;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return false;
      finished_ = true;
      done = std::move(done_);
      timer_id = timer_id_;
    }
    jq_->hub_.Unregister(params_.queue, this);
    if (timer_id != 0) jq_->clock_->Cancel(timer_id);
    if (timed_out) jq_->observer_->OnLongPollTimeout(params_.queue);
    done(std::move(result));
    return true;
  }

  JobQueue* const jq_;
  LeaseParams params_;
  bool default_timeout_;
  const absl::Time wait_until_;
  absl::Mutex mu_;
  Clock::TimerId timer_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  Callback<std::vector<LeasedJob>> done_ ABSL_GUARDED_BY(mu_);
};

JobQueue::JobQueue(Executor* executor, JobQueueOptions options,
                   Observer* observer, Clock* clock, ListenerFactory listen)
    : pool_(executor),
      options_(std::move(options)),
      observer_(observer != nullptr ? observer : &null_observer_),
      own_clock_(clock == nullptr ? std::make_unique<Timer>() : nullptr),
      clock_(clock != nullptr ? clock : own_clock_.get()),
      listen_(std::move(listen)) {
  typename GroupCommit<PendingEnqueue>::Options eo;
  eo.max_in_flight = options_.group_commit_in_flight;
  enqueues_ = std::make_unique<GroupCommit<PendingEnqueue>>(
      pool_, eo,
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
      pool_, ao,
      [](const PendingAck& p) {
        size_t bytes = 0;
        for (const Completion& c : p.valid) bytes += c.result.size();
        return std::make_pair(p.valid.size(), bytes);
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
  ScheduleHealthCheck();
  ScheduleMaintenance(clock_->Now());
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
  clock_->Shutdown();
  if (listener_) listener_->Stop();
}

void JobQueue::SetHealthCallback(absl::AnyInvocable<void(bool)> fn) {
  absl::MutexLock lock(&mu_);
  health_callback_ = std::move(fn);
}

double JobQueue::RandomUnit() {
  thread_local absl::BitGen gen;
  return absl::Uniform(gen, 0.0, 1.0);
}

absl::StatusOr<QueueConfig> JobQueue::QueueConfigFor(StoreSession* session,
                                                     const std::string& name) {
  absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = queue_cache_.find(name);
    if (it != queue_cache_.end() && it->second.expires > now) {
      return it->second.config;
    }
  }
  auto config = session->EnsureQueue(name);
  if (!config.ok()) return config.status();
  absl::MutexLock lock(&mu_);
  queue_cache_[name] = CachedQueue{*config, now + options_.queue_config_ttl};
  return config;
}

void JobQueue::Enqueue(std::vector<JobInput> jobs, bool batch,
                       Callback<std::vector<EnqueueResult>> done) {
  const Limits& limits = options_.limits;
  if (static_cast<int>(jobs.size()) > limits.max_batch_jobs) {
    done(absl::InvalidArgumentError(
        absl::StrCat("jobs has ", jobs.size(), " entries; the limit is ",
                     limits.max_batch_jobs, " per call")));
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
  // Settings of each distinct queue.
  absl::flat_hash_map<std::string, QueueConfig> configs;
  for (const PendingEnqueue& p : group) {
    for (const JobInput& j : p.jobs) {
      if (configs.contains(j.queue)) continue;
      auto config = QueueConfigFor(s, j.queue);
      if (!config.ok()) {
        for (PendingEnqueue& q : group) q.done(config.status());
        return;
      }
      configs.emplace(j.queue, *std::move(config));
    }
  }
  // Queues with a depth limit make the group one transaction that locks
  // them (Session::EnqueueWithinDepth), so the limit holds exactly across
  // statements in flight and replicas.
  absl::flat_hash_map<std::string, int64_t> limited;  // Queue -> jobs wanted.
  for (const PendingEnqueue& p : group) {
    for (const JobInput& j : p.jobs) {
      if (configs[j.queue].max_depth > 0) ++limited[j.queue];
    }
  }
  // One row per new job; an idempotency key repeated within the group maps
  // to its first job.
  struct Slot {
    int row = -1;      // Row inserted for this job, or
    int same_as = -1;  // the row of the job with the same key.
  };
  std::vector<NewJob> rows;
  std::vector<std::vector<Slot>> slots(group.size());
  std::vector<bool> accepted(group.size(), true);
  std::vector<absl::Status> refused(group.size());
  // Decides which requests fit (request by request in arrival order: one
  // that would overfill a queue is refused alone) and builds their rows.
  // With depth limits the jobs are copied, not moved: the transaction may be
  // tried twice.
  auto plan = [&](const QueueDepths* depths) -> const std::vector<NewJob>& {
    rows.clear();
    absl::flat_hash_map<std::string, int64_t> depth;
    for (size_t r = 0; r < group.size(); ++r) {
      accepted[r] = true;
      refused[r] = absl::OkStatus();
      slots[r].clear();
      if (depths == nullptr) continue;
      absl::flat_hash_map<std::string, int64_t> adds;
      for (const JobInput& j : group[r].jobs) {
        if (depths->contains(j.queue)) ++adds[j.queue];
      }
      for (const auto& [name, count] : adds) {
        const QueueDepth& d = depths->at(name);
        auto it = depth.try_emplace(name, d.depth).first;
        if (it->second + count > d.max_depth) {
          accepted[r] = false;
          refused[r] = absl::ResourceExhaustedError(
              absl::StrCat("queue ", name, " is full: ", it->second,
                           " jobs are waiting or running and its max depth is ",
                           d.max_depth, "; retry later"));
          break;
        }
      }
      if (accepted[r]) {
        for (const auto& [name, count] : adds) depth[name] += count;
      }
    }
    absl::flat_hash_map<std::pair<std::string, std::string>, int> first_key;
    for (size_t r = 0; r < group.size(); ++r) {
      if (!accepted[r]) continue;
      slots[r].resize(group[r].jobs.size());
      for (size_t i = 0; i < group[r].jobs.size(); ++i) {
        JobInput in =
            depths == nullptr ? std::move(group[r].jobs[i]) : group[r].jobs[i];
        if (!in.idempotency_key.empty()) {
          auto [it, inserted] =
              first_key.emplace(std::make_pair(in.queue, in.idempotency_key),
                                static_cast<int>(rows.size()));
          if (!inserted) {
            slots[r][i].same_as = it->second;
            continue;
          }
        }
        const QueueConfig& config = configs[in.queue];
        NewJob row;
        row.queue = std::move(in.queue);
        row.payload = std::move(in.payload);
        row.priority = static_cast<int16_t>(in.priority);
        row.run_at = in.run_at;
        row.delay = in.delay.value_or(absl::ZeroDuration());
        row.max_attempts =
            in.max_attempts > 0 ? in.max_attempts : config.max_attempts;
        row.idempotency_key = std::move(in.idempotency_key);
        row.idempotency_window = config.idempotency_window;
        row.headers = std::move(in.headers);
        std::sort(row.headers.begin(), row.headers.end());
        slots[r][i].row = static_cast<int>(rows.size());
        rows.push_back(std::move(row));
      }
    }
    return rows;
  };
  absl::Time start = clock_->Now();
  absl::StatusOr<std::vector<EnqueueResult>> inserted;
  if (limited.empty()) {
    plan(nullptr);
    inserted = s->Enqueue(rows);
    if (absl::IsAborted(inserted.status())) {
      inserted = s->Enqueue(rows);  // A serialization conflict: once more.
    }
  } else {
    auto by_depth = [&](const QueueDepths& d) -> const std::vector<NewJob>& {
      return plan(&d);
    };
    // The bound is recounted at least as often as settings are reloaded,
    // which takes in what replicas enqueued before they saw a new limit.
    const absl::Duration recount = options_.queue_config_ttl;
    inserted = s->EnqueueWithinDepth(limited, recount, by_depth);
    if (absl::IsAborted(inserted.status())) {
      inserted = s->EnqueueWithinDepth(limited, recount, by_depth);
    }
  }
  observer_->OnDatabaseRoundTrip("enqueue", clock_->Now() - start);
  observer_->OnEnqueueBatch(static_cast<int64_t>(rows.size()));
  if (!inserted.ok()) {
    // Nothing was written; a request refused for depth keeps its answer.
    for (size_t r = 0; r < group.size(); ++r) {
      group[r].done(accepted[r] ? inserted.status() : refused[r]);
    }
    return;
  }
  for (size_t r = 0; r < group.size(); ++r) {
    if (!accepted[r]) group[r].done(refused[r]);
  }
  absl::flat_hash_map<std::string, std::pair<int64_t, int64_t>> counts;
  absl::flat_hash_map<std::string, int64_t> ready;
  absl::Time earliest = absl::InfiniteFuture();
  std::vector<std::vector<EnqueueResult>> outs(group.size());
  for (size_t r = 0; r < group.size(); ++r) {
    if (!accepted[r]) continue;
    std::vector<EnqueueResult>& out = outs[r];
    out.resize(slots[r].size());
    for (size_t i = 0; i < slots[r].size(); ++i) {
      const Slot& slot = slots[r][i];
      const int row = slot.row >= 0 ? slot.row : slot.same_as;
      out[i] = (*inserted)[row];
      auto& [created, duplicates] = counts[rows[row].queue];
      if (slot.row < 0) {
        out[i].duplicate = true;
        out[i].scheduled_for.reset();
      }
      if (out[i].duplicate) {
        ++duplicates;
      } else {
        ++created;
        if (out[i].scheduled_for.has_value()) {
          earliest = std::min(earliest, *out[i].scheduled_for);
        } else {
          ++ready[rows[row].queue];
        }
      }
    }
  }
  // Counted before the answers leave (a client never sees its job
  // uncounted); waking waiters follows the answers.
  for (const auto& [queue, c] : counts) {
    observer_->OnEnqueued(queue, c.first, c.second);
  }
  for (size_t r = 0; r < group.size(); ++r) {
    if (accepted[r]) group[r].done(std::move(outs[r]));
  }
  for (const auto& [queue, n] : ready) JobsReady(queue, n, true);
  if (earliest != absl::InfiniteFuture()) NoteScheduled(earliest);
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
  const absl::Time now = clock_->Now();
  absl::Time wait_until = now + wait;
  if (deadline != absl::InfiniteFuture()) {
    wait_until = std::min(wait_until, deadline - options_.deadline_margin);
  }
  auto call = std::make_shared<PollCall>(
      this, std::move(params), default_timeout, wait_until, std::move(done));
  call->Start();
  return call;
}

void JobQueue::JobsReady(const std::string& queue, int64_t jobs, bool publish) {
  if (jobs <= 0) return;
  hub_.Notify(queue, jobs);
  if (publish && options_.listen) Publish(queue);
}

void JobQueue::Publish(const std::string& queue) {
  {
    absl::MutexLock lock(&mu_);
    pending_notify_.insert(queue);
  }
  FlushNotifications();
}

void JobQueue::FlushNotifications() {
  {
    absl::MutexLock lock(&mu_);
    // A send in flight or armed will take what is pending.
    if (pending_notify_.empty()) return;
    if (notify_in_flight_ || notify_armed_) return;
    const absl::Time now = clock_->Now();
    if (now < next_notify_) {
      notify_armed_ = true;
      clock_->Schedule(next_notify_, [this] {
        {
          absl::MutexLock lock(&mu_);
          notify_armed_ = false;
          if (notify_in_flight_ || pending_notify_.empty()) return;
          notify_in_flight_ = true;
        }
        SendNotifications();
      });
      return;
    }
    notify_in_flight_ = true;
  }
  SendNotifications();
}

void JobQueue::SendNotifications() {
  // One NOTIFY carries every queue that got jobs since the last one, and
  // NOTIFYs are at least notify_interval apart: a burst of enqueues costs
  // one notification, sent outside the job-writing statement.
  pool_->Submit([this](absl::StatusOr<StoreSession*> session) {
    std::vector<std::string> queues;
    {
      absl::MutexLock lock(&mu_);
      queues.assign(pending_notify_.begin(), pending_notify_.end());
      pending_notify_.clear();
    }
    if (session.ok() && !queues.empty()) {
      std::string payload = options_.replica_id;
      for (const std::string& q : queues) {
        if (payload.size() + q.size() + 1 > kMaxNotifyPayload) {
          (void)(*session)->Notify(options_.notify_channel, payload);
          payload = options_.replica_id;
        }
        absl::StrAppend(&payload, "\n", q);
      }
      absl::Status st = (*session)->Notify(options_.notify_channel, payload);
      if (!st.ok()) LogDebug("notify failed", {{"error", st.message()}});
    }
    bool again;
    {
      absl::MutexLock lock(&mu_);
      notify_in_flight_ = false;
      next_notify_ = clock_->Now() + options_.notify_interval;
      again = !pending_notify_.empty();
    }
    // Queues that arrived meanwhile go out after the interval.
    if (again) FlushNotifications();
  });
}

void JobQueue::OnNotification(const std::string& payload) {
  std::vector<std::string> parts = absl::StrSplit(payload, '\n');
  if (parts.empty() || parts[0] == options_.replica_id) return;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!parts[i].empty()) hub_.Notify(parts[i], 1);
  }
}

void JobQueue::NoteScheduled(absl::Time when) {
  absl::MutexLock lock(&mu_);
  if (stopped_ || when >= scheduled_wakeup_) return;
  if (scheduled_timer_ != 0) clock_->Cancel(scheduled_timer_);
  scheduled_wakeup_ = when;
  scheduled_timer_ = clock_->Schedule(when, [this] {
    {
      absl::MutexLock lock(&mu_);
      scheduled_wakeup_ = absl::InfiniteFuture();
      scheduled_timer_ = 0;
    }
    RunMaintenance(false);
  });
}

void JobQueue::ScheduleMaintenance(absl::Time when) {
  if (stopped_) return;
  clock_->Schedule(when, [this] {
    bool retention;
    {
      absl::MutexLock lock(&mu_);
      retention = clock_->Now() >= next_retention_;
      if (retention)
        next_retention_ = clock_->Now() + options_.retention_interval;
    }
    RunMaintenance(retention);
    ScheduleMaintenance(clock_->Now() + options_.maintenance_interval);
  });
}

void JobQueue::ScheduleFallbackPoll() {
  if (stopped_) return;
  clock_->Schedule(clock_->Now() + options_.fallback_poll, [this] {
    // Every queue with waiters looks once more, in case a wake-up was lost.
    hub_.NotifyEachQueue();
    ScheduleFallbackPoll();
  });
}

void JobQueue::RunMaintenance(bool retention) {
  {
    absl::MutexLock lock(&mu_);
    if (maintenance_running_) {
      maintenance_again_ = true;
      return;
    }
    maintenance_running_ = true;
  }
  pool_->Submit([this, retention](absl::StatusOr<StoreSession*> session) {
    // One pass; a lost connection ends it (the next pass reconnects).
    if (session.ok())
      [&] {
        StoreSession* s = *session;
        const int batch = options_.maintenance_batch;
        constexpr int kMaxBatches = 10;
        for (int i = 0; i < kMaxBatches; ++i) {
          auto reaped = s->ReapExpiredLeases(batch);
          if (!reaped.ok()) return;
          absl::flat_hash_map<std::string, int64_t> dead;
          for (const auto& [q, n] : reaped->dead) dead[q] = n;
          for (const auto& [q, n] : reaped->made_ready) {
            observer_->OnLeasesExpired(q, n, dead[q]);
            dead.erase(q);
            JobsReady(q, n, true);
          }
          for (const auto& [q, n] : dead) observer_->OnLeasesExpired(q, 0, n);
          if (reaped->total > 0) {
            LogInfo("expired leases returned", {{"jobs", reaped->total}});
          }
          if (reaped->total < batch) break;
        }
        for (int i = 0; i < kMaxBatches; ++i) {
          auto promoted = s->PromoteScheduled(batch);
          if (!promoted.ok()) return;
          int64_t total = 0;
          for (const auto& [q, n] : *promoted) {
            total += n;
            JobsReady(q, n, true);
          }
          if (total < batch) break;
        }
        auto next = s->NextScheduledRunAt();
        if (!next.ok()) return;
        if (next->has_value()) NoteScheduled(**next);
        if (retention) {
          int64_t purged = 0, keys = 0;
          for (int i = 0; i < kMaxBatches; ++i) {
            auto n = s->PurgeFinished(batch);
            if (!n.ok()) return;
            purged += *n;
            if (*n < batch) break;
          }
          for (int i = 0; i < kMaxBatches; ++i) {
            auto n = s->PurgeIdempotencyKeys(batch);
            if (!n.ok()) return;
            keys += *n;
            if (*n < batch) break;
          }
          if (purged > 0 || keys > 0) {
            LogInfo("retention clean-up",
                    {{"jobs_deleted", purged}, {"keys_deleted", keys}});
          }
        }
      }();
    bool again;
    {
      absl::MutexLock lock(&mu_);
      maintenance_running_ = false;
      again = maintenance_again_;
      maintenance_again_ = false;
    }
    if (again && !stopped_) RunMaintenance(false);
  });
}

void JobQueue::ScheduleHealthCheck() {
  if (stopped_) return;
  pool_->Submit([this](absl::StatusOr<StoreSession*> session) {
    bool ok = session.ok() && (*session)->Ping().ok();
    SetHealthy(ok);
    if (!stopped_) {
      clock_->Schedule(clock_->Now() + options_.health_interval,
                       [this] { ScheduleHealthCheck(); });
    }
  });
}

void JobQueue::SetHealthy(bool healthy) {
  if (healthy_.exchange(healthy) == healthy) return;
  LogInfo(healthy ? "database reachable" : "database unreachable");
  absl::MutexLock lock(&mu_);
  if (health_callback_) health_callback_(healthy);
}

void JobQueue::Ack(std::vector<CompletionInput> completions,
                   Callback<std::vector<absl::Status>> done) {
  const Limits& limits = options_.limits;
  if (static_cast<int>(completions.size()) > limits.max_ack_batch) {
    done(absl::InvalidArgumentError(
        absl::StrCat("completions has ", completions.size(),
                     " entries; the limit is ", limits.max_ack_batch)));
    return;
  }
  std::vector<absl::Status> results(completions.size());
  std::vector<Completion> valid;
  std::vector<size_t> index;
  for (size_t i = 0; i < completions.size(); ++i) {
    const std::string field = absl::StrCat("completions[", i, "]");
    auto id = ParseJobId(completions[i].job_id, field + ".job_id");
    if (!id.ok()) {
      results[i] = id.status();
      continue;
    }
    if (absl::Status s =
            ValidateLeaseId(completions[i].lease_id, field + ".lease_id");
        !s.ok()) {
      results[i] = s;
      continue;
    }
    if (static_cast<int64_t>(completions[i].result.size()) >
        limits.max_result_bytes) {
      results[i] = absl::InvalidArgumentError(
          absl::StrCat(field, ".result is ", completions[i].result.size(),
                       " bytes; the limit is ", limits.max_result_bytes));
      continue;
    }
    Completion c;
    c.job_id = *id;
    c.lease_id = std::move(completions[i].lease_id);
    c.result = std::move(completions[i].result);
    valid.push_back(std::move(c));
    index.push_back(i);
  }
  if (valid.empty()) {
    done(std::move(results));
    return;
  }
  acks_->Add(PendingAck{std::move(valid), std::move(index), std::move(results),
                        std::move(done)});
}

void JobQueue::ProcessAcks(absl::StatusOr<StoreSession*> session,
                           std::vector<PendingAck>& group) {
  if (!session.ok()) {
    for (PendingAck& p : group) p.done(session.status());
    return;
  }
  std::vector<Completion> all;
  for (PendingAck& p : group) {
    for (Completion& c : p.valid) all.push_back(std::move(c));
  }
  absl::Time start = clock_->Now();
  auto acked = (*session)->Ack(all);
  observer_->OnDatabaseRoundTrip("ack", clock_->Now() - start);
  observer_->OnAckBatch(static_cast<int64_t>(all.size()));
  if (!acked.ok()) {
    for (PendingAck& p : group) p.done(acked.status());
    return;
  }
  size_t k = 0;
  for (PendingAck& p : group) {
    for (size_t i = 0; i < p.index.size(); ++i, ++k) {
      AckItem& item = (*acked)[k];
      p.results[p.index[i]] = item.status;
      if (item.status.ok()) {
        observer_->OnAcked(item.queue,
                           item.processing.value_or(absl::ZeroDuration()));
      }
    }
    p.done(std::move(p.results));
  }
}

void JobQueue::Nack(NackInput input, Callback<NackResult> done) {
  auto id = ParseJobId(input.job_id, "job_id");
  if (!id.ok()) {
    done(id.status());
    return;
  }
  if (absl::Status s = ValidateLeaseId(input.lease_id, "lease_id"); !s.ok()) {
    done(s);
    return;
  }
  if (input.retry_delay.has_value()) {
    if (*input.retry_delay < absl::ZeroDuration()) {
      done(absl::InvalidArgumentError("retry_delay must not be negative"));
      return;
    }
    if (*input.retry_delay > options_.limits.max_retry_delay) {
      done(absl::InvalidArgumentError(
          absl::StrCat("retry_delay must be at most ",
                       absl::FormatDuration(options_.limits.max_retry_delay))));
      return;
    }
  }
  NackParams params;
  params.job_id = *id;
  params.lease_id = std::move(input.lease_id);
  params.error =
      SanitizeErrorText(input.error, options_.limits.max_error_bytes);
  params.dead_letter = input.dead_letter;
  params.retry_delay = input.retry_delay;
  params.backoff_unit = RandomUnit();
  pool_->Submit([this, params = std::move(params), done = std::move(done)](
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
      NoteScheduled(*r.next_run_at);
    }
  });
}

void JobQueue::ExtendLease(std::string job_id, std::string lease_id,
                           std::optional<absl::Duration> visibility_timeout,
                           Callback<absl::Time> done) {
  auto id = ParseJobId(job_id, "job_id");
  if (!id.ok()) {
    done(id.status());
    return;
  }
  if (absl::Status s = ValidateLeaseId(lease_id, "lease_id"); !s.ok()) {
    done(s);
    return;
  }
  if (visibility_timeout.has_value()) {
    if (absl::Status s = ValidateVisibilityTimeout(
            *visibility_timeout, options_.limits, "visibility_timeout");
        !s.ok()) {
      done(s);
      return;
    }
  }
  pool_->Submit(
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
          auto config = QueueConfigFor(s, lease->queue);
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
  pool_->Submit([job = *id, done = std::move(done)](
                    absl::StatusOr<StoreSession*> session) mutable {
    if (!session.ok()) {
      done(session.status());
      return;
    }
    done((*session)->GetJob(job));
  });
}

}  // namespace spool::core
