#include "settle.h"

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"

namespace spool::internal {

SettleAction ToSettleAction(const Outcome& outcome) {
  SettleAction action;
  switch (outcome.kind()) {
    case Outcome::Kind::kSuccess:
      action.kind = SettleAction::Kind::kAck;
      action.result = outcome.result();
      break;
    case Outcome::Kind::kRetry:
      action.kind = SettleAction::Kind::kNack;
      action.error = outcome.error();
      if (outcome.retry_delay().has_value()) {
        action.retry_delay =
            std::max(absl::ZeroDuration(), *outcome.retry_delay());
      }
      break;
    case Outcome::Kind::kFail:
      action.kind = SettleAction::Kind::kNack;
      action.error = outcome.error();
      action.dead_letter = true;
      break;
  }
  return action;
}

Outcome OutcomeFromException(std::exception_ptr error) {
  try {
    if (error) std::rethrow_exception(error);
    return Outcome::Retry("handler failed without an exception");
  } catch (const std::exception& e) {
    const char* what = e.what();
    return Outcome::Retry(what != nullptr && *what != '\0'
                              ? std::string(what)
                              : std::string("exception with empty message"));
  } catch (const std::string& s) {
    return Outcome::Retry(s);
  } catch (const char* s) {
    return Outcome::Retry(s != nullptr ? std::string(s) : "null exception");
  } catch (...) {
    return Outcome::Retry(
        "unknown exception (not derived from std::exception)");
  }
}

SettleAction HandBackAction(std::string reason) {
  SettleAction action;
  action.kind = SettleAction::Kind::kNack;
  action.retry_delay = absl::ZeroDuration();
  action.error = std::move(reason);
  return action;
}

absl::Duration ExtensionInterval(absl::Duration visibility_timeout) {
  return std::max(absl::Milliseconds(100), visibility_timeout / 3);
}

ItemVerdict ClassifyItemCode(int code) {
  switch (static_cast<absl::StatusCode>(code)) {
    case absl::StatusCode::kOk:
      return ItemVerdict::kOk;
    case absl::StatusCode::kFailedPrecondition:
      return ItemVerdict::kLeaseLost;
    case absl::StatusCode::kNotFound:
      return ItemVerdict::kNotFound;
    default:
      return ItemVerdict::kRejected;
  }
}

bool IsTransient(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

bool IsUnreachable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable ||
         code == absl::StatusCode::kDeadlineExceeded;
}

bool ShouldRetryClientCall(absl::StatusCode code, bool idempotent, bool sent) {
  if (!sent || code == absl::StatusCode::kAborted) return true;
  return idempotent && code == absl::StatusCode::kUnavailable;
}

}  // namespace spool::internal
