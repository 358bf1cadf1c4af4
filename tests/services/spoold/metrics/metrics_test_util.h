// Helpers for the metrics tests: a strict parser of the Prometheus text
// exposition format, a tiny loopback HTTP client (scrapes and Prometheus'
// HTTP API), JSON through protobuf's Value, and PromQL helpers that pull
// expressions out of the Grafana dashboard and split alert expressions at
// their comparisons.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"

namespace spool::testing {

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // Family name -> type.
  std::vector<Sample> samples;

  // Sum of the samples named `name` whose labels include `match`; nullopt
  // when no sample matches.
  std::optional<double> Find(const std::string& name,
                             const Labels& match = {}) const;
  // Find() or 0.
  double Sum(const std::string& name, const Labels& match = {}) const;
  // Every value label `label` takes across all samples.
  std::set<std::string> LabelValues(const std::string& label) const;
};

// Parses and validates text format 0.0.4: syntax of names, labels, escapes
// and values; every sample belongs to a # TYPE'd family; histogram buckets
// are cumulative and end with +Inf equal to _count.
absl::StatusOr<Exposition> ParsePrometheusText(absl::string_view text);

struct HttpResponse {
  int status = 0;
  std::string body;
};
// GET http://127.0.0.1:port/path (HTTP/1.0, the whole body).
absl::StatusOr<HttpResponse> HttpGet(
    int port, const std::string& path,
    absl::Duration timeout = absl::Seconds(10));

std::string UrlEncode(absl::string_view s);

// An executable on $PATH.
absl::StatusOr<std::string> FindProgram(const std::string& name);

absl::StatusOr<google::protobuf::Value> ParseJson(const std::string& json);
absl::StatusOr<std::string> ReadFile(const std::string& path);
// A file of the source tree (SPOOL_SOURCE_DIR).
std::string SourcePath(const std::string& relative);

// Every PromQL expression of a Grafana dashboard: panel targets (nested rows
// included) and query variables (label_values(m, l) becomes
// `group by (l) (m)`). Grafana variables are replaced so Prometheus can run
// them: $queue and ${queue} -> ".*", $__rate_interval -> `rate_interval`,
// $__interval -> 5s, $__range -> 5m.
std::vector<std::string> DashboardExpressions(
    const google::protobuf::Value& dashboard,
    const std::string& rate_interval = "30s");

// The operands of `expr` around its top-level comparison and set operators
// (== != > < >= <= and or unless; the bool modifier dropped), minus number
// literals: what to evaluate so an alert with a threshold still returns
// series. An expression without them comes back whole.
std::vector<std::string> AlertOperands(const std::string& expr);

// The `expr:` values of a Prometheus rules file (plain or folded with >- / |),
// without a YAML library: enough for deploy/prometheus/alerts.yml.
std::vector<std::string> RuleExpressionsFromYaml(absl::string_view yaml);

// Names of the metrics an expression mentions that start with `prefix`
// (label values such as table="spool_jobs" excluded).
std::set<std::string> MetricNames(absl::string_view expr,
                                  absl::string_view prefix = "spool_");

}  // namespace spool::testing
