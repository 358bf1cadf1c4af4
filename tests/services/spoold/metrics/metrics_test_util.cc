#include "tests/services/spoold/metrics/metrics_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"

namespace spool::testing {
namespace {

bool IsNameStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool IsNameChar(char c) {
  return IsNameStart(c) || std::isdigit(static_cast<unsigned char>(c));
}

bool ValidMetricName(absl::string_view s) {
  if (s.empty() || !IsNameStart(s[0])) return false;
  for (char c : s) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

bool ValidLabelName(absl::string_view s) {
  if (s.empty() || s[0] == ':' || !IsNameStart(s[0])) return false;
  for (char c : s) {
    if (!IsNameChar(c) || c == ':') return false;
  }
  return true;
}

bool ParseValue(absl::string_view s, double* out) {
  const std::string lower = absl::AsciiStrToLower(s);
  if (lower == "nan") {
    *out = std::nan("");
    return true;
  }
  if (lower == "+inf" || lower == "inf") {
    *out = INFINITY;
    return true;
  }
  if (lower == "-inf") {
    *out = -INFINITY;
    return true;
  }
  return absl::SimpleAtod(s, out);
}

// Parses `name{a="x",b="y"} value [timestamp]`.
absl::Status ParseSampleLine(absl::string_view line, Sample* sample) {
  size_t i = 0;
  while (i < line.size() && IsNameChar(line[i])) ++i;
  sample->name = std::string(line.substr(0, i));
  if (!ValidMetricName(sample->name)) {
    return absl::InvalidArgumentError("bad metric name");
  }
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      size_t start = i;
      while (i < line.size() && line[i] != '=') ++i;
      std::string name(line.substr(start, i - start));
      if (!ValidLabelName(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad label name '", name, "'"));
      }
      if (i + 1 >= line.size() || line[i + 1] != '"') {
        return absl::InvalidArgumentError("label value not quoted");
      }
      i += 2;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\') {
          if (i >= line.size()) break;
          char e = line[i++];
          if (e == 'n') {
            value += '\n';
          } else if (e == '\\' || e == '"') {
            value += e;
          } else {
            return absl::InvalidArgumentError("bad escape in label value");
          }
        } else if (c == '"') {
          closed = true;
          break;
        } else if (c == '\n') {
          break;
        } else {
          value += c;
        }
      }
      if (!closed)
        return absl::InvalidArgumentError("unterminated label value");
      if (!sample->labels.emplace(name, value).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("duplicate label ", name));
      }
      if (i < line.size() && line[i] == ',') ++i;
    }
  }
  if (i >= line.size() || line[i] != ' ') {
    return absl::InvalidArgumentError("no value");
  }
  std::vector<absl::string_view> rest =
      absl::StrSplit(line.substr(i + 1), ' ', absl::SkipEmpty());
  if (rest.empty() || rest.size() > 2) {
    return absl::InvalidArgumentError("expected value [timestamp]");
  }
  if (!ParseValue(rest[0], &sample->value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad value '", rest[0], "'"));
  }
  int64_t ts;
  if (rest.size() == 2 && !absl::SimpleAtoi(rest[1], &ts)) {
    return absl::InvalidArgumentError("bad timestamp");
  }
  return absl::OkStatus();
}

// The family a sample name belongs to, given the declared types.
std::optional<std::string> FamilyOf(
    const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.contains(name)) return name;
  for (absl::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (absl::EndsWith(name, suffix)) {
      std::string base = name.substr(0, name.size() - suffix.size());
      auto it = types.find(base);
      if (it != types.end() &&
          (it->second == "histogram" || it->second == "summary")) {
        return base;
      }
    }
  }
  return std::nullopt;
}

absl::Status CheckHistograms(const Exposition& e) {
  // (family, labels without le) -> buckets by bound, and the count.
  std::map<std::pair<std::string, Labels>, std::map<double, double>> buckets;
  std::map<std::pair<std::string, Labels>, double> counts;
  for (const Sample& s : e.samples) {
    auto family = FamilyOf(s.name, e.types);
    if (!family || e.types.at(*family) != "histogram") continue;
    Labels labels = s.labels;
    if (s.name == *family + "_bucket") {
      auto le = labels.find("le");
      if (le == labels.end()) {
        return absl::InvalidArgumentError(absl::StrCat(s.name, " without le"));
      }
      double bound;
      if (!ParseValue(le->second, &bound)) {
        return absl::InvalidArgumentError(absl::StrCat(s.name, " bad le"));
      }
      labels.erase(le);
      buckets[{*family, labels}][bound] = s.value;
    } else if (s.name == *family + "_count") {
      counts[{*family, labels}] = s.value;
    }
  }
  for (const auto& [key, by_bound] : buckets) {
    double last = 0;
    for (const auto& [bound, n] : by_bound) {
      if (n < last) {
        return absl::InvalidArgumentError(
            absl::StrCat(key.first, " buckets are not cumulative"));
      }
      last = n;
    }
    if (by_bound.empty() || !std::isinf(by_bound.rbegin()->first)) {
      return absl::InvalidArgumentError(
          absl::StrCat(key.first, " has no +Inf bucket"));
    }
    auto count = counts.find(key);
    if (count == counts.end() || count->second != by_bound.rbegin()->second) {
      return absl::InvalidArgumentError(
          absl::StrCat(key.first, ": +Inf bucket differs from _count"));
    }
  }
  return absl::OkStatus();
}

absl::string_view Trim(absl::string_view s) {
  return absl::StripAsciiWhitespace(s);
}

bool IsNumberLiteral(absl::string_view s) {
  double d;
  return absl::SimpleAtod(Trim(s), &d);
}

const google::protobuf::Value* Field(const google::protobuf::Value& v,
                                     const std::string& name) {
  if (v.kind_case() != google::protobuf::Value::kStructValue) return nullptr;
  auto it = v.struct_value().fields().find(name);
  return it == v.struct_value().fields().end() ? nullptr : &it->second;
}

std::string Substitute(std::string expr, const std::string& rate_interval) {
  return absl::StrReplaceAll(expr, {{"${queue}", ".*"},
                                    {"$queue", ".*"},
                                    {"$__rate_interval", rate_interval},
                                    {"$__interval", "5s"},
                                    {"$__range", "5m"}});
}

void CollectPanels(const google::protobuf::Value& panels,
                   const std::string& rate_interval,
                   std::vector<std::string>* out) {
  if (panels.kind_case() != google::protobuf::Value::kListValue) return;
  for (const auto& panel : panels.list_value().values()) {
    if (const auto* nested = Field(panel, "panels")) {
      CollectPanels(*nested, rate_interval, out);
    }
    const auto* targets = Field(panel, "targets");
    if (targets == nullptr ||
        targets->kind_case() != google::protobuf::Value::kListValue) {
      continue;
    }
    for (const auto& target : targets->list_value().values()) {
      const auto* expr = Field(target, "expr");
      if (expr != nullptr && !expr->string_value().empty()) {
        out->push_back(Substitute(expr->string_value(), rate_interval));
      }
    }
  }
}

}  // namespace

std::optional<double> Exposition::Find(const std::string& name,
                                       const Labels& match) const {
  std::optional<double> total;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) {
        ok = false;
        break;
      }
    }
    if (ok) total = total.value_or(0) + s.value;
  }
  return total;
}

double Exposition::Sum(const std::string& name, const Labels& match) const {
  return Find(name, match).value_or(0);
}

std::set<std::string> Exposition::LabelValues(const std::string& label) const {
  std::set<std::string> out;
  for (const Sample& s : samples) {
    auto it = s.labels.find(label);
    if (it != s.labels.end()) out.insert(it->second);
  }
  return out;
}

absl::StatusOr<Exposition> ParsePrometheusText(absl::string_view text) {
  Exposition e;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": ", why, ": ", line));
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<absl::string_view> parts =
          absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() >= 2 && (parts[1] == "HELP" || parts[1] == "TYPE")) {
        if (parts.size() < 3 || !ValidMetricName(parts[2])) {
          return fail("bad HELP/TYPE name");
        }
        if (parts[1] == "TYPE") {
          if (parts.size() != 4) return fail("TYPE without a type");
          static const std::set<absl::string_view> kTypes = {
              "counter", "gauge", "histogram", "summary", "untyped"};
          if (!kTypes.contains(parts[3])) return fail("unknown type");
          if (!e.types.emplace(parts[2], parts[3]).second) {
            return fail("family typed twice");
          }
        }
      }
      continue;
    }
    Sample s;
    if (absl::Status st = ParseSampleLine(line, &s); !st.ok()) {
      return fail(st.message());
    }
    if (!FamilyOf(s.name, e.types)) return fail("sample of no # TYPE'd family");
    e.samples.push_back(std::move(s));
  }
  if (absl::Status st = CheckHistograms(e); !st.ok()) return st;
  return e;
}

absl::StatusOr<HttpResponse> HttpGet(int port, const std::string& path,
                                     absl::Duration timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::strerror(errno));
  timeval tv{};
  tv.tv_sec = absl::ToInt64Seconds(timeout);
  tv.tv_usec = absl::ToInt64Microseconds(timeout) % 1000000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("connect to port ", port, ": ", std::strerror(err)));
  }
  const std::string request =
      absl::StrCat("GET ", path,
                   " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return absl::UnavailableError("send failed");
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[65536];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::DeadlineExceededError(
          absl::StrCat("recv from port ", port, ": ", std::strerror(err)));
    }
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos || !absl::StartsWith(raw, "HTTP/")) {
    return absl::InternalError("malformed HTTP response");
  }
  HttpResponse r;
  std::vector<absl::string_view> status_line =
      absl::StrSplit(raw.substr(0, raw.find("\r\n")), ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &r.status)) {
    return absl::InternalError("malformed HTTP status line");
  }
  r.body = raw.substr(header_end + 4);
  return r;
}

std::string UrlEncode(absl::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

absl::StatusOr<std::string> FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(
      name,
      " is not on PATH; tools/install-deps installs it (Debian package "
      "prometheus)"));
}

absl::StatusOr<google::protobuf::Value> ParseJson(const std::string& json) {
  google::protobuf::Value value;
  auto status = google::protobuf::util::JsonStringToMessage(json, &value);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad JSON: ", std::string(status.message())));
  }
  return value;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string SourcePath(const std::string& relative) {
  return absl::StrCat(SPOOL_SOURCE_DIR, "/", relative);
}

std::vector<std::string> DashboardExpressions(
    const google::protobuf::Value& dashboard,
    const std::string& rate_interval) {
  std::vector<std::string> out;
  if (const auto* panels = Field(dashboard, "panels")) {
    CollectPanels(*panels, rate_interval, &out);
  }
  const auto* templating = Field(dashboard, "templating");
  const auto* list = templating ? Field(*templating, "list") : nullptr;
  if (list != nullptr &&
      list->kind_case() == google::protobuf::Value::kListValue) {
    for (const auto& var : list->list_value().values()) {
      const auto* type = Field(var, "type");
      if (type == nullptr || type->string_value() != "query") continue;
      const auto* query = Field(var, "query");
      std::string q;
      if (query != nullptr && query->has_struct_value()) {
        if (const auto* inner = Field(*query, "query"))
          q = inner->string_value();
      } else if (query != nullptr) {
        q = query->string_value();
      }
      // label_values(metric, label)
      absl::string_view body = q;
      if (absl::ConsumePrefix(&body, "label_values(") &&
          absl::ConsumeSuffix(&body, ")")) {
        const size_t comma = body.rfind(',');
        if (comma != absl::string_view::npos) {
          out.push_back(absl::StrCat("group by (", Trim(body.substr(comma + 1)),
                                     ") (", Trim(body.substr(0, comma)), ")"));
          continue;
        }
      }
      if (!q.empty()) out.push_back(Substitute(q, rate_interval));
    }
  }
  return out;
}

std::vector<std::string> AlertOperands(const std::string& expr) {
  std::vector<std::string> pieces;
  int depth = 0;
  char quote = 0;
  size_t start = 0;
  auto cut = [&](size_t end, size_t next) {
    pieces.emplace_back(expr.substr(start, end - start));
    start = next;
  };
  auto word_at = [&](size_t i, absl::string_view w) {
    if (absl::string_view(expr).substr(i, w.size()) != w) return false;
    const bool left = i == 0 || !IsNameChar(expr[i - 1]);
    const size_t j = i + w.size();
    const bool right = j >= expr.size() || !IsNameChar(expr[j]);
    return left && right;
  };
  for (size_t i = 0; i < expr.size(); ++i) {
    const char c = expr[i];
    if (quote != 0) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    if (c == '"' || c == '\'' || c == '`') {
      quote = c;
    } else if (c == '(' || c == '{' || c == '[') {
      ++depth;
    } else if (c == ')' || c == '}' || c == ']') {
      --depth;
    } else if (depth == 0) {
      const absl::string_view two = absl::string_view(expr).substr(i, 2);
      if (two == "==" || two == "!=" || two == ">=" || two == "<=") {
        cut(i, i + 2);
        ++i;
      } else if (c == '>' || c == '<') {
        cut(i, i + 1);
      } else {
        for (absl::string_view w : {"and", "or", "unless"}) {
          if (word_at(i, w)) {
            cut(i, i + w.size());
            i += w.size() - 1;
            break;
          }
        }
      }
    }
  }
  pieces.emplace_back(expr.substr(start));
  std::vector<std::string> out;
  for (absl::string_view p : pieces) {
    p = Trim(p);
    if (absl::ConsumePrefix(&p, "bool")) p = Trim(p);
    if (p.empty() || IsNumberLiteral(p)) continue;
    out.emplace_back(p);
  }
  return out;
}

std::vector<std::string> RuleExpressionsFromYaml(absl::string_view yaml) {
  std::vector<std::string> out;
  std::vector<absl::string_view> lines = absl::StrSplit(yaml, '\n');
  auto indent = [](absl::string_view l) {
    size_t n = 0;
    while (n < l.size() && l[n] == ' ') ++n;
    return n;
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    const size_t key_indent = indent(line);
    absl::string_view rest = line.substr(key_indent);
    if (!absl::ConsumePrefix(&rest, "expr:")) continue;
    rest = Trim(rest);
    if (rest == ">-" || rest == ">" || rest == "|" || rest == "|-") {
      std::string expr;
      while (i + 1 < lines.size() && (Trim(lines[i + 1]).empty() ||
                                      indent(lines[i + 1]) > key_indent)) {
        ++i;
        if (Trim(lines[i]).empty()) continue;
        absl::StrAppend(&expr, expr.empty() ? "" : "\n", Trim(lines[i]));
      }
      out.push_back(expr);
    } else {
      std::string expr(rest);
      if (expr.size() >= 2 && (expr.front() == '\'' || expr.front() == '"') &&
          expr.back() == expr.front()) {
        expr = expr.substr(1, expr.size() - 2);
      }
      out.push_back(expr);
    }
  }
  return out;
}

std::set<std::string> MetricNames(absl::string_view expr,
                                  absl::string_view prefix) {
  std::set<std::string> out;
  size_t i = 0;
  while ((i = expr.find(prefix, i)) != absl::string_view::npos) {
    const bool in_name = i > 0 && IsNameChar(expr[i - 1]);
    const bool label_value = i >= 2 && expr[i - 1] == '"' &&
                             (expr[i - 2] == '=' || expr[i - 2] == '~');
    if (in_name || label_value) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < expr.size() && IsNameChar(expr[j])) ++j;
    out.emplace(expr.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace spool::testing
