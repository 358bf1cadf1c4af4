// What spool-bench prints: one summary line per scenario ("name: k=v ..."),
// with --json also one JSON object per line, and "FAIL:" lines on stderr for
// wrong counts (which make the run exit 1).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace spool::bench {

// One scenario's result.
struct Report {
  explicit Report(std::string name) : scenario(std::move(name)) {}

  std::string scenario;
  std::vector<std::pair<std::string, std::string>> fields;

  template <typename T>
  void Add(const std::string& k, const T& v) {
    fields.emplace_back(k, absl::StrCat(v));
  }
  void Add(const std::string& k, double v) {
    fields.emplace_back(k, absl::StrFormat("%.1f", v));
  }
  // The summary line and (with --json) the JSON line, on stdout. With
  // --max_depth, scenarios on a queue also report it.
  void Print() const;
};

// Reports a wrong count on stderr and marks the run failed.
void Fail(const std::string& what);
// Whether Fail() was called.
bool Failed();

}  // namespace spool::bench
