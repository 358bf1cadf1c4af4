// Encoding of values for PostgreSQL parameters and decoding of results:
// array literals for batch statements (used with unnest), header maps as
// JSON objects, and times as microseconds since the epoch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/types.h"

namespace spool::store {

// A text[] literal; std::nullopt elements become NULL.
std::string TextArrayLiteral(const std::vector<std::optional<std::string>>& v);
std::string TextArrayLiteral(const std::vector<std::string>& v);

// An integer array literal ({1,2,3}).
template <typename Int>
std::string IntArrayLiteral(const std::vector<Int>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(v[i]);
  }
  out += '}';
  return out;
}

// Headers as a JSON object ({"name": "value", ...}); empty headers give "{}".
std::string EncodeHeadersJson(const Headers& headers);
// Parses the JSON object PostgreSQL prints for a jsonb of string values.
absl::StatusOr<Headers> DecodeHeadersJson(std::string_view json);

inline int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
inline absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }
inline int64_t ToMicros(absl::Duration d) {
  return absl::ToInt64Microseconds(d);
}

}  // namespace spool::store
