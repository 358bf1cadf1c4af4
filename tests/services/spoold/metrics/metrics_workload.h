// The known workload of the metrics tests, run through the real API, with a
// tally of what it did so tests compare metrics with it rather than with
// numbers typed in twice.
//
//   queue "work":   100 jobs created (50 in one EnqueueBatch, 50 one by one,
//                   5 of those with idempotency keys), 5 duplicate enqueues,
//                   70 leased (40 + 30), 60 acked in one Ack, 10 dead-lettered
//                   by Nack -> 30 ready.
//   queue "retry":  1 job leased and nacked for an immediate retry -> 1 ready.
//   queue "expiry": 1 job leased for 1 s and never acked -> its lease expires
//                   (after the workload) and it is ready again.
//   errors:         one Enqueue with an invalid priority, one GetJob of an
//                   unknown job.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/services/spoold/api_helpers.h"

namespace spool::testing {

struct Workload {
  int created = 0;     // In "work".
  int duplicates = 0;  // In "work".
  int leased = 0;      // In "work".
  int acked = 0;       // In "work".
  int dead = 0;        // In "work".
  // (method, code name) -> calls made.
  std::map<std::pair<std::string, std::string>, int> calls;
  std::vector<std::string> job_ids;  // Every job id seen.
};

inline const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    default:
      return "OTHER";
  }
}

inline Workload RunKnownWorkload(Api& api) {
  Workload w;
  auto tally = [&w](const char* method, const grpc::Status& s) {
    ++w.calls[{method, CodeName(s.error_code())}];
    EXPECT_NE(std::string(CodeName(s.error_code())), "OTHER")
        << method << ": " << s.error_message();
  };
  auto spec = [](const std::string& queue, int i) {
    v1::JobSpec j;
    j.set_queue(queue);
    j.set_payload("job " + std::to_string(i));
    return j;
  };

  // 50 in one batch.
  std::vector<v1::JobSpec> batch;
  for (int i = 0; i < 50; ++i) batch.push_back(spec("work", i));
  v1::EnqueueBatchResponse br;
  grpc::Status s = api.EnqueueBatch(batch, &br);
  tally("EnqueueBatch", s);
  EXPECT_TRUE(s.ok()) << s.error_message();
  for (const auto& r : br.results()) {
    w.job_ids.push_back(r.job_id());
    if (!r.duplicate()) ++w.created;
  }
  // 50 one by one; 5 with idempotency keys, each enqueued twice.
  for (int i = 50; i < 100; ++i) {
    v1::JobSpec j = spec("work", i);
    if (i < 55) j.set_idempotency_key("key-" + std::to_string(i));
    for (int attempt = 0; attempt < (i < 55 ? 2 : 1); ++attempt) {
      v1::EnqueueResponse r;
      s = api.Enqueue(j, &r);
      tally("Enqueue", s);
      EXPECT_TRUE(s.ok()) << s.error_message();
      w.job_ids.push_back(r.job_id());
      if (r.duplicate()) {
        ++w.duplicates;
      } else {
        ++w.created;
      }
    }
  }

  // 70 leased in two calls.
  std::vector<v1::LeasedJob> leased;
  for (int n : {40, 30}) {
    v1::LeaseRequest req;
    req.set_queue("work");
    req.set_max_jobs(n);
    *req.mutable_visibility_timeout() = ToProtoDuration(absl::Minutes(5));
    v1::LeaseResponse resp;
    s = api.Lease(req, &resp);
    tally("Lease", s);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.jobs_size(), n);
    leased.insert(leased.end(), resp.jobs().begin(), resp.jobs().end());
  }
  w.leased = static_cast<int>(leased.size());
  absl::SleepFor(absl::Milliseconds(20));  // Some processing time.

  // 60 acked in one call.
  std::vector<v1::Completion> completions;
  for (size_t i = 0; i < 60 && i < leased.size(); ++i) {
    v1::Completion c;
    c.set_job_id(leased[i].job_id());
    c.set_lease_id(leased[i].lease_id());
    completions.push_back(c);
  }
  v1::AckResponse ar;
  s = api.Ack(completions, &ar);
  tally("Ack", s);
  EXPECT_TRUE(s.ok()) << s.error_message();
  for (const auto& r : ar.results()) {
    EXPECT_EQ(r.code(), 0) << r.message();
    if (r.code() == 0) ++w.acked;
  }
  // 10 dead-lettered.
  for (size_t i = 60; i < 70 && i < leased.size(); ++i) {
    v1::NackRequest req;
    req.set_job_id(leased[i].job_id());
    req.set_lease_id(leased[i].lease_id());
    req.set_error("handler gave up on job " + leased[i].job_id());
    req.set_dead_letter(true);
    v1::NackResponse resp;
    s = api.Nack(req, &resp);
    tally("Nack", s);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (s.ok() && resp.state() == v1::JOB_STATE_DEAD) ++w.dead;
  }

  // "retry": one retried job.
  w.job_ids.push_back(api.MustEnqueue("retry", "r"));
  ++w.calls[{"Enqueue", "OK"}];
  auto retry = api.LeaseJobs("retry", 1);
  ++w.calls[{"Lease", "OK"}];
  EXPECT_EQ(retry.size(), 1u);
  if (!retry.empty()) {
    v1::NackRequest req;
    req.set_job_id(retry[0].job_id());
    req.set_lease_id(retry[0].lease_id());
    *req.mutable_retry_delay() = ToProtoDuration(absl::ZeroDuration());
    v1::NackResponse resp;
    s = api.Nack(req, &resp);
    tally("Nack", s);
    EXPECT_EQ(resp.state(), v1::JOB_STATE_READY);
  }

  // "expiry": a lease left to expire.
  w.job_ids.push_back(api.MustEnqueue("expiry", "e"));
  ++w.calls[{"Enqueue", "OK"}];
  EXPECT_EQ(
      api.LeaseJobs("expiry", 1, absl::ZeroDuration(), absl::Seconds(1)).size(),
      1u);
  ++w.calls[{"Lease", "OK"}];

  // Client errors.
  v1::JobSpec bad = spec("work", 999);
  bad.set_priority(1000);
  v1::EnqueueResponse r;
  s = api.Enqueue(bad, &r);
  tally("Enqueue", s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::Job job;
  s = api.GetJob("987654321", &job);
  tally("GetJob", s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  return w;
}

}  // namespace spool::testing
