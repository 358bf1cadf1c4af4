// Structured logging: one line per event, key=value, to stderr or a sink.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace spool::internal {

using LogField = std::pair<absl::string_view, std::string>;

// "ts=... level=warn component=spool.worker event=ack_failed k=v ..."; values
// with spaces, quotes, '=' or nothing in them are quoted and escaped.
std::string FormatLogLine(absl::Time ts, absl::string_view level,
                          absl::string_view component, absl::string_view event,
                          std::initializer_list<LogField> fields);

class Logger {
 public:
  using Sink = std::function<void(std::string_view line)>;
  Logger(std::string component, Sink sink)
      : component_(std::move(component)), sink_(std::move(sink)) {}

  void Info(absl::string_view event, std::initializer_list<LogField> fields) {
    Log("info", event, fields);
  }
  void Warn(absl::string_view event, std::initializer_list<LogField> fields) {
    Log("warn", event, fields);
  }
  void Error(absl::string_view event, std::initializer_list<LogField> fields) {
    Log("error", event, fields);
  }

 private:
  void Log(absl::string_view level, absl::string_view event,
           std::initializer_list<LogField> fields);
  std::string component_;
  Sink sink_;
};

}  // namespace spool::internal
