#include "runtime.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace spool::internal {
namespace {

thread_local const void* t_runtime_of = nullptr;

}  // namespace

Runtime::Runtime(WorkerOptions options_in, std::string worker_id_in,
                 const Clock& clock_in)
    : options(std::move(options_in)),
      worker_id(std::move(worker_id_in)),
      clock(clock_in),
      log("spool.worker", options.log_sink) {}

void Runtime::ReportFailure(const ActiveJob& job, JobFailure failure,
                            const absl::Status& status) const {
  Observe([&](WorkerObserver& o) { o.OnJobFailed(job.job, failure, status); });
}

void MarkRuntimeThread(const void* owner) { t_runtime_of = owner; }

bool IsRuntimeThreadOf(const void* owner) { return t_runtime_of == owner; }

std::string Ms(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d));
}

std::string CodeName(absl::StatusCode code) {
  return absl::StatusCodeToString(code);
}

}  // namespace spool::internal
