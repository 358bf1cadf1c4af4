#include "spool/outcome.h"

#include "spool/observer.h"

namespace spool {

Outcome Outcome::Success(std::string result) {
  return Outcome(Kind::kSuccess, std::move(result), {}, std::nullopt);
}

Outcome Outcome::Retry(std::string error) {
  return Outcome(Kind::kRetry, {}, std::move(error), std::nullopt);
}

Outcome Outcome::Retry(absl::Duration delay, std::string error) {
  if (delay < absl::ZeroDuration()) delay = absl::ZeroDuration();
  return Outcome(Kind::kRetry, {}, std::move(error), delay);
}

Outcome Outcome::Fail(std::string error) {
  return Outcome(Kind::kFail, {}, std::move(error), std::nullopt);
}

const char* Outcome::KindName(Kind kind) {
  switch (kind) {
    case Kind::kSuccess:
      return "success";
    case Kind::kRetry:
      return "retry";
    case Kind::kFail:
      return "fail";
  }
  return "unknown";
}

const char* JobFailureName(JobFailure failure) {
  switch (failure) {
    case JobFailure::kHandlerException:
      return "handler_exception";
    case JobFailure::kLeaseLost:
      return "lease_lost";
    case JobFailure::kSettleFailed:
      return "settle_failed";
  }
  return "unknown";
}

}  // namespace spool
