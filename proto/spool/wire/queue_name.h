// The API's rule for queue names, shared by spoold (which enforces it) and the
// SDK (which checks early, for a clear error before any call).
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace spool::wire {

inline constexpr size_t kMaxQueueNameLength = 128;

// OK when `name` matches [A-Za-z0-9][A-Za-z0-9_.-]{0,127}; otherwise
// INVALID_ARGUMENT naming `field` and what is wrong.
absl::Status ValidateQueueName(absl::string_view name, absl::string_view field);

inline bool IsValidQueueName(absl::string_view name) {
  return ValidateQueueName(name, "queue").ok();
}

}  // namespace spool::wire
