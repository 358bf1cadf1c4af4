#include "base/log.h"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace spool {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_json{false};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void AppendLogfmtValue(std::string& out, std::string_view s) {
  bool quote = s.empty();
  for (char c : s) {
    if (c == ' ' || c == '"' || c == '=' || c < 0x20) quote = true;
  }
  if (!quote) {
    out += s;
    return;
  }
  AppendJsonString(out, s);
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
void SetLogJson(bool json) { g_json = json; }

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  std::string t = absl::AsciiStrToLower(std::string(text));
  if (t == "debug")
    *level = LogLevel::kDebug;
  else if (t == "info")
    *level = LogLevel::kInfo;
  else if (t == "warning" || t == "warn")
    *level = LogLevel::kWarning;
  else if (t == "error")
    *level = LogLevel::kError;
  else
    return false;
  return true;
}

std::string FormatLogLine(LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields, bool json) {
  std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone());
  std::string out;
  if (json) {
    absl::StrAppend(&out, "{\"ts\":\"", ts, "\",\"level\":\"", LevelName(level),
                    "\",\"msg\":");
    AppendJsonString(out, msg);
    for (const LogField& f : fields) {
      out += ',';
      AppendJsonString(out, f.key);
      out += ':';
      AppendJsonString(out, f.value);
    }
    out += '}';
  } else {
    absl::StrAppend(&out, "ts=", ts, " level=", LevelName(level), " msg=");
    AppendJsonString(out, msg);
    for (const LogField& f : fields) {
      absl::StrAppend(&out, " ", f.key, "=");
      AppendLogfmtValue(out, f.value);
    }
  }
  out += '\n';
  return out;
}

void Log(LogLevel level, std::string_view msg,
         std::initializer_list<LogField> fields) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) {
    return;
  }
  std::string line = FormatLogLine(level, msg, fields, g_json.load());
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::string RedactDatabaseUrl(std::string_view url) {
  std::string s(url);
  // URL form: scheme://user:password@host...
  size_t scheme = s.find("://");
  if (scheme != std::string::npos) {
    size_t at = s.find('@', scheme + 3);
    size_t colon = s.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at) {
      s.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // Key/value form (password=..., password = '...', also sslpassword) and
  // URL query parameters (?password=...&...). In a URL, "://" comes before
  // any '='; in key/value form, the first keyword's '=' comes first.
  const bool is_url = scheme != std::string::npos && s.find('=') > scheme;
  constexpr std::string_view kKey = "password";
  size_t pos = 0;
  while ((pos = s.find(kKey, pos)) != std::string::npos) {
    size_t eq = pos + kKey.size();
    while (!is_url && eq < s.size() && absl::ascii_isspace(s[eq])) ++eq;
    if (eq >= s.size() || s[eq] != '=') {
      pos += kKey.size();
      continue;
    }
    size_t start = eq + 1;
    size_t end;
    if (is_url) {
      end = s.find('&', start);
    } else {
      while (start < s.size() && absl::ascii_isspace(s[start])) ++start;
      if (start < s.size() && s[start] == '\'') {
        // Quoted value: up to the closing quote; backslash escapes.
        end = start + 1;
        while (end < s.size() && s[end] != '\'') end += s[end] == '\\' ? 2 : 1;
        end = std::min(end + 1, s.size());
      } else {
        end = start;
        while (end < s.size() && !absl::ascii_isspace(s[end])) ++end;
      }
    }
    if (end == std::string::npos) end = s.size();
    s.replace(start, end - start, "***");
    pos = start + 3;
  }
  return s;
}

}  // namespace spool
