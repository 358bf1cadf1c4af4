#include "core/validation.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spool/wire/queue_name.h"

namespace spool::core {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", what));
}

std::string Path(absl::string_view prefix, absl::string_view name) {
  if (prefix.empty()) return std::string(name);
  return absl::StrCat(prefix, ".", name);
}

}  // namespace

absl::Status ValidateQueueName(absl::string_view name,
                               absl::string_view field) {
  return wire::ValidateQueueName(name, field);
}

absl::Status ValidateVisibilityTimeout(absl::Duration timeout,
                                       const Limits& limits,
                                       absl::string_view field) {
  if (timeout < limits.min_visibility_timeout ||
      timeout > limits.max_visibility_timeout) {
    return Invalid(
        field, absl::StrCat("must be between ",
                            absl::FormatDuration(limits.min_visibility_timeout),
                            " and ",
                            absl::FormatDuration(limits.max_visibility_timeout),
                            " (got ", absl::FormatDuration(timeout), ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateJob(const JobInput& job, const Limits& limits,
                         absl::Time now, absl::string_view field) {
  if (absl::Status s = ValidateQueueName(job.queue, Path(field, "queue"));
      !s.ok()) {
    return s;
  }
  if (static_cast<int64_t>(job.payload.size()) > limits.max_payload_bytes) {
    return Invalid(
        Path(field, "payload"),
        absl::StrCat("is ", job.payload.size(), " bytes; the limit is ",
                     limits.max_payload_bytes));
  }
  if (job.priority < limits.min_priority ||
      job.priority > limits.max_priority) {
    return Invalid(
        Path(field, "priority"),
        absl::StrCat("must be between ", limits.min_priority, " and ",
                     limits.max_priority, " (got ", job.priority, ")"));
  }
  if (job.delay.has_value() && job.run_at.has_value()) {
    return Invalid(Path(field, "delay"),
                   "and run_at are exclusive: set at most one");
  }
  if (job.delay.has_value()) {
    if (*job.delay < absl::ZeroDuration()) {
      return Invalid(Path(field, "delay"), "must not be negative");
    }
    if (*job.delay > limits.max_delay) {
      return Invalid(Path(field, "delay"),
                     absl::StrCat("must be at most ",
                                  absl::FormatDuration(limits.max_delay)));
    }
  }
  if (job.run_at.has_value()) {
    if (*job.run_at > now + limits.max_delay) {
      return Invalid(
          Path(field, "run_at"),
          absl::StrCat("is more than ", absl::FormatDuration(limits.max_delay),
                       " ahead"));
    }
    if (*job.run_at < now - limits.max_delay) {
      return Invalid(
          Path(field, "run_at"),
          absl::StrCat("is more than ", absl::FormatDuration(limits.max_delay),
                       " in the past"));
    }
  }
  if (job.max_attempts < 0) {
    return Invalid(Path(field, "max_attempts"),
                   absl::StrCat("must not be negative (got ", job.max_attempts,
                                "); 0 means the queue's default"));
  }
  if (job.idempotency_key.size() >
      static_cast<size_t>(limits.max_idempotency_key_bytes)) {
    return Invalid(
        Path(field, "idempotency_key"),
        absl::StrCat("is ", job.idempotency_key.size(), " bytes; the limit is ",
                     limits.max_idempotency_key_bytes));
  }
  if (job.idempotency_key.find('\0') != std::string::npos) {
    return Invalid(Path(field, "idempotency_key"),
                   "must not contain NUL characters");
  }
  if (static_cast<int>(job.headers.size()) > limits.max_headers) {
    return Invalid(Path(field, "headers"),
                   absl::StrCat("has ", job.headers.size(),
                                " entries; the limit is ", limits.max_headers));
  }
  int64_t header_bytes = 0;
  for (const auto& [name, value] : job.headers) {
    if (name.empty())
      return Invalid(Path(field, "headers"), "has an empty name");
    if (name.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return Invalid(
          Path(field, "headers"),
          absl::StrCat("entry \"", name, "\" contains a NUL character"));
    }
    header_bytes += static_cast<int64_t>(name.size() + value.size());
  }
  if (header_bytes > limits.max_header_bytes) {
    return Invalid(Path(field, "headers"),
                   absl::StrCat("total ", header_bytes, " bytes; the limit is ",
                                limits.max_header_bytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateLease(const LeaseInput& lease, const Limits& limits) {
  if (absl::Status s = ValidateQueueName(lease.queue, "queue"); !s.ok()) {
    return s;
  }
  if (lease.max_jobs < 0 || lease.max_jobs > limits.max_lease_jobs) {
    return Invalid("max_jobs",
                   absl::StrCat("must be between 1 and ", limits.max_lease_jobs,
                                " (got ", lease.max_jobs, "; 0 means 1)"));
  }
  if (lease.wait.has_value() && *lease.wait < absl::ZeroDuration()) {
    return Invalid("wait", "must not be negative");
  }
  if (lease.visibility_timeout.has_value()) {
    if (absl::Status s = ValidateVisibilityTimeout(
            *lease.visibility_timeout, limits, "visibility_timeout");
        !s.ok()) {
      return s;
    }
  }
  if (lease.worker_id.size() >
      static_cast<size_t>(limits.max_worker_id_bytes)) {
    return Invalid(
        "worker_id",
        absl::StrCat("is longer than ", limits.max_worker_id_bytes, " bytes"));
  }
  if (lease.worker_id.find('\0') != std::string::npos) {
    return Invalid("worker_id", "must not contain NUL characters");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseJobId(absl::string_view id,
                                   absl::string_view field) {
  if (id.empty()) return Invalid(field, "is required");
  int64_t v = 0;
  // SimpleAtoi alone would also take a sign and surrounding whitespace.
  const bool all_digits = std::all_of(id.begin(), id.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
  if (id.size() > 19 || !all_digits || !absl::SimpleAtoi(id, &v) || v <= 0) {
    return Invalid(field, absl::StrCat("\"", id.substr(0, 64),
                                       "\" is not a Spool job id"));
  }
  return v;
}

absl::Status ValidateLeaseId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return Invalid(field, "is required");
  bool ok = id.size() == 36;
  for (size_t i = 0; ok && i < id.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      ok = id[i] == '-';
    } else {
      ok = absl::ascii_isxdigit(static_cast<unsigned char>(id[i]));
    }
  }
  if (!ok) {
    return Invalid(field, absl::StrCat("\"", id.substr(0, 64),
                                       "\" is not a Spool lease id"));
  }
  return absl::OkStatus();
}

std::string SanitizeErrorText(absl::string_view error, int max_bytes) {
  std::string out;
  out.reserve(std::min<size_t>(error.size(), max_bytes));
  for (char c : error) {
    if (c != '\0') out += c;
  }
  if (out.size() <= static_cast<size_t>(max_bytes)) return out;
  static constexpr absl::string_view kMarker = "…[truncated]";
  if (max_bytes < static_cast<int>(kMarker.size())) {
    // No room for the marker: cut without one (below, on a UTF-8 boundary).
    size_t cut = std::max(max_bytes, 0);
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    out.resize(cut);
    return out;
  }
  size_t cut = max_bytes - kMarker.size();
  // Do not split a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  out.resize(cut);
  out.append(kMarker.data(), kMarker.size());
  return out;
}

absl::Status ValidateEnqueueBatchSize(size_t jobs, const Limits& limits) {
  if (jobs > static_cast<size_t>(limits.max_batch_jobs)) {
    return absl::InvalidArgumentError(
        absl::StrCat("jobs has ", jobs, " entries; the limit is ",
                     limits.max_batch_jobs, " per call"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckedCompletions> CheckCompletions(
    std::vector<CompletionInput> completions, const Limits& limits) {
  if (completions.size() > static_cast<size_t>(limits.max_ack_batch)) {
    return absl::InvalidArgumentError(
        absl::StrCat("completions has ", completions.size(),
                     " entries; the limit is ", limits.max_ack_batch));
  }
  CheckedCompletions out;
  out.results.resize(completions.size());
  for (size_t i = 0; i < completions.size(); ++i) {
    const std::string field = absl::StrCat("completions[", i, "]");
    auto id = ParseJobId(completions[i].job_id, field + ".job_id");
    if (!id.ok()) {
      out.results[i] = id.status();
      continue;
    }
    if (absl::Status s =
            ValidateLeaseId(completions[i].lease_id, field + ".lease_id");
        !s.ok()) {
      out.results[i] = s;
      continue;
    }
    if (static_cast<int64_t>(completions[i].result.size()) >
        limits.max_result_bytes) {
      out.results[i] = absl::InvalidArgumentError(
          absl::StrCat(field, ".result is ", completions[i].result.size(),
                       " bytes; the limit is ", limits.max_result_bytes));
      continue;
    }
    Completion c;
    c.job_id = *id;
    c.lease_id = std::move(completions[i].lease_id);
    c.result = std::move(completions[i].result);
    out.valid.push_back(std::move(c));
    out.index.push_back(i);
  }
  return out;
}

absl::StatusOr<NackParams> CheckNack(NackInput input, const Limits& limits) {
  auto id = ParseJobId(input.job_id, "job_id");
  if (!id.ok()) return id.status();
  if (absl::Status s = ValidateLeaseId(input.lease_id, "lease_id"); !s.ok()) {
    return s;
  }
  if (input.retry_delay.has_value()) {
    if (*input.retry_delay < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("retry_delay must not be negative");
    }
    if (*input.retry_delay > limits.max_retry_delay) {
      return absl::InvalidArgumentError(
          absl::StrCat("retry_delay must be at most ",
                       absl::FormatDuration(limits.max_retry_delay)));
    }
  }
  NackParams params;
  params.job_id = *id;
  params.lease_id = std::move(input.lease_id);
  params.error = SanitizeErrorText(input.error, limits.max_error_bytes);
  params.dead_letter = input.dead_letter;
  params.retry_delay = input.retry_delay;
  return params;
}

absl::StatusOr<int64_t> CheckExtendLease(
    absl::string_view job_id, absl::string_view lease_id,
    const std::optional<absl::Duration>& visibility_timeout,
    const Limits& limits) {
  auto id = ParseJobId(job_id, "job_id");
  if (!id.ok()) return id.status();
  if (absl::Status s = ValidateLeaseId(lease_id, "lease_id"); !s.ok()) {
    return s;
  }
  if (visibility_timeout.has_value()) {
    if (absl::Status s = ValidateVisibilityTimeout(*visibility_timeout, limits,
                                                   "visibility_timeout");
        !s.ok()) {
      return s;
    }
  }
  return id;
}

}  // namespace spool::core
