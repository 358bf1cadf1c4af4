// Server-wide limits on requests. Ranges are enforced, never clamped
// silently; the one exception is a long-poll `wait`, which the API documents
// as capped by the server.
#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace spool::core {

struct Limits {
  int64_t max_payload_bytes = 1 << 20;
  int max_headers = 64;
  int64_t max_header_bytes = 8 << 10;  // Names and values together.
  int max_batch_jobs = 1000;
  int max_ack_batch = 1000;
  int max_lease_jobs = 256;
  // A Lease response stops taking jobs once their payloads and headers
  // (plus ~200 bytes each) would pass this; the first job always fits. Keeps
  // responses under gRPC's default 4 MiB message limit, so clients that never
  // raised it do not fail on a full batch (and strand its jobs).
  int64_t max_lease_bytes = 3 << 20;
  absl::Duration max_wait = absl::Seconds(30);
  absl::Duration min_visibility_timeout = absl::Seconds(1);
  absl::Duration max_visibility_timeout = absl::Hours(12);
  absl::Duration max_delay = absl::Hours(24 * 366);
  absl::Duration max_retry_delay = absl::Hours(24 * 366);
  int64_t max_result_bytes = 64 << 10;
  int max_idempotency_key_bytes = 512;
  int max_worker_id_bytes = 256;
  // Longer nack error texts are cut to this size, marked as truncated.
  int max_error_bytes = 16 << 10;
  int32_t min_priority = -100;
  int32_t max_priority = 100;
};

}  // namespace spool::core
