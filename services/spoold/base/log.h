// Structured logging for spoold: one line per event, as logfmt
// (ts=… level=info msg="…" key=value) or JSON, to stderr. Values are never
// secrets: callers redact connection strings before logging them.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"

namespace spool {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// One key=value field of a log line.
struct LogField {
  template <typename T>
  LogField(std::string_view k, const T& v) : key(k), value(absl::StrCat(v)) {}
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  std::string key;
  std::string value;
};

// Process-wide settings; set once at start-up.
void SetLogLevel(LogLevel level);
void SetLogJson(bool json);
bool ParseLogLevel(std::string_view text, LogLevel* level);

void Log(LogLevel level, std::string_view msg,
         std::initializer_list<LogField> fields = {});

inline void LogDebug(std::string_view msg,
                     std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kDebug, msg, fields);
}
inline void LogInfo(std::string_view msg,
                    std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kInfo, msg, fields);
}
inline void LogWarning(std::string_view msg,
                       std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kWarning, msg, fields);
}
inline void LogError(std::string_view msg,
                     std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kError, msg, fields);
}

// Formats one line without writing it (exposed for tests).
std::string FormatLogLine(LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields, bool json);

// "postgresql://user:secret@host/db" -> "postgresql://user:***@host/db";
// also masks password=… in key/value connection strings.
std::string RedactDatabaseUrl(std::string_view url);

}  // namespace spool
