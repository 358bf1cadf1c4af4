#include "spool/wire/queue_name.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace spool::wire {
namespace {

bool IsQueueChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '.' || c == '-';
}

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", what));
}

}  // namespace

absl::Status ValidateQueueName(absl::string_view name,
                               absl::string_view field) {
  if (name.empty()) return Invalid(field, "is required");
  if (name.size() > kMaxQueueNameLength) {
    return Invalid(field, absl::StrCat("is ", name.size(),
                                       " characters long; the limit is ",
                                       kMaxQueueNameLength));
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    return Invalid(field, "must start with a letter or digit");
  }
  for (char c : name) {
    if (!IsQueueChar(c)) {
      return Invalid(field,
                     "may contain only letters, digits, '_', '.' and '-'");
    }
  }
  return absl::OkStatus();
}

}  // namespace spool::wire
