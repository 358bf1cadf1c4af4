#include "core/fencing.h"

#include "absl/strings/str_cat.h"

namespace spool::core {

absl::Status LeaseMismatchStatus(int64_t job_id, JobState state,
                                 bool same_lease) {
  switch (state) {
    case JobState::kLeased:
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id,
          " is leased by a newer attempt: this lease expired and the job was "
          "delivered again"));
    case JobState::kSucceeded:
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " already succeeded"));
    case JobState::kDead:
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " is dead"));
    case JobState::kCancelled:
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " was cancelled"));
    case JobState::kReady:
    case JobState::kScheduled:
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " is not leased: ",
                       same_lease ? "this lease was already released"
                                  : "its lease expired or it was nacked",
                       "; it will be delivered again"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("job ", job_id, " is not held by this lease"));
}

}  // namespace spool::core
