#include "tools/bench/metering.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace spool::bench {
namespace {

// The fields of /proc/PID/stat after "(comm) ", counted from field 3
// (state); empty when unreadable.
std::vector<std::string> StatFields(int pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(f)),
                   std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 > stat.size()) return {};
  return absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
}

}  // namespace

int64_t ProcStatus(int pid, const std::string& key) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::vector<std::string> parts =
          absl::StrSplit(line.substr(key.size() + 1), absl::ByAnyChar(" \t"),
                         absl::SkipEmpty());
      int64_t v = 0;
      if (!parts.empty() && absl::SimpleAtoi(parts[0], &v)) return v;
    }
  }
  return -1;
}

double ProcCpuSeconds(int pid, bool reaped) {
  const std::vector<std::string> fields = StatFields(pid);
  int64_t utime = 0, stime = 0, cutime = 0, cstime = 0;
  // Fields 14 to 17 of stat; here counted from field 3.
  if (fields.size() < 15 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime) ||
      !absl::SimpleAtoi(fields[13], &cutime) ||
      !absl::SimpleAtoi(fields[14], &cstime)) {
    return -1;
  }
  if (!reaped) cutime = cstime = 0;
  return static_cast<double>(utime + stime + cutime + cstime) /
         sysconf(_SC_CLK_TCK);
}

double PostgresCpuSeconds(int postmaster_pid) {
  double total = ProcCpuSeconds(postmaster_pid, /*reaped=*/true);
  if (total < 0) return -1;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  while (dirent* e = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    const std::vector<std::string> fields = StatFields(pid);
    int ppid = 0;
    // Field 4 of stat, the parent's pid.
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) &&
        ppid == postmaster_pid) {
      total += std::max(0.0, ProcCpuSeconds(pid, /*reaped=*/true));
    }
  }
  closedir(proc);
  return total;
}

CpuMeter::CpuMeter(int spoold_pid, int postmaster_pid)
    : spoold_pid_(spoold_pid), postmaster_pid_(postmaster_pid) {
  self_ = SelfCpu();
  spoold_ = spoold_pid_ > 0 ? ProcCpuSeconds(spoold_pid_) : -1;
  pg_ = postmaster_pid_ > 0 ? PostgresCpuSeconds(postmaster_pid_) : -1;
}

void CpuMeter::Stop() {
  if (stopped_) return;
  stopped_ = true;
  self_ = SelfCpu() - self_;
  if (spoold_pid_ > 0) spoold_ = ProcCpuSeconds(spoold_pid_) - spoold_;
  if (postmaster_pid_ > 0) pg_ = PostgresCpuSeconds(postmaster_pid_) - pg_;
}

void CpuMeter::AddTo(Report& r) {
  Stop();
  r.Add("cpu_s_bench", self_);
  if (spoold_pid_ > 0) {
    r.Add("cpu_s_spoold", spoold_);
    r.Add("cpu_s_postgres", pg_);
  }
}

double CpuMeter::SelfCpu() {
  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  auto secs = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return secs(self.ru_utime) + secs(self.ru_stime) + secs(children.ru_utime) +
         secs(children.ru_stime);
}

}  // namespace spool::bench
