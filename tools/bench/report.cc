#include "tools/bench/report.h"

#include <atomic>
#include <cstdint>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "tools/bench/flags.h"

namespace spool::bench {
namespace {
std::atomic<bool> g_failed{false};
}  // namespace

void Report::Print() const {
  std::vector<std::pair<std::string, std::string>> fields = this->fields;
  const int64_t max_depth = absl::GetFlag(FLAGS_max_depth);
  if (max_depth > 0 && scenario != "rpc_ceiling" && scenario != "spoold") {
    fields.emplace_back("max_depth", absl::StrCat(max_depth));
  }
  std::string line = absl::StrCat(scenario, ":");
  for (const auto& [k, v] : fields) absl::StrAppend(&line, " ", k, "=", v);
  std::printf("%s\n", line.c_str());
  if (absl::GetFlag(FLAGS_json)) {
    std::string js = absl::StrCat("{\"scenario\":\"", scenario, "\"");
    for (const auto& [k, v] : fields) {
      double d;
      bool number = absl::SimpleAtod(v, &d);
      absl::StrAppend(&js, ",\"", k,
                      "\":", number ? v : absl::StrCat("\"", v, "\""));
    }
    js += "}";
    std::printf("%s\n", js.c_str());
  }
  std::fflush(stdout);
}

void Fail(const std::string& what) {
  g_failed = true;
  std::fprintf(stderr, "spool-bench: FAIL: %s\n", what.c_str());
}

bool Failed() { return g_failed.load(); }

}  // namespace spool::bench
