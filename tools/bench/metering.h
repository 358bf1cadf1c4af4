// Where a scenario's CPU and memory went, from /proc and getrusage: this
// process (the load generator, including worker processes it reaped),
// spoold, and PostgreSQL (the postmaster and all its backends).
#pragma once

#include <cstdint>
#include <string>

#include "tools/bench/report.h"

namespace spool::bench {

// A "Key:  N kB"-style value of /proc/PID/status (e.g. VmRSS, Threads); -1
// when unknown.
int64_t ProcStatus(int pid, const std::string& key);

// CPU seconds (user + system) of a process and all its threads, from
// /proc/PID/stat; -1 when unknown. With `reaped`, plus its children that
// exited and were waited for.
double ProcCpuSeconds(int pid, bool reaped = false);

// CPU seconds of a PostgreSQL server: its postmaster, every live child of it
// (backends, background workers), and the children it reaped, so backends
// that ended during a scenario still count. Only this server: other
// PostgreSQL servers on the machine are not counted. -1 when unknown.
double PostgresCpuSeconds(int postmaster_pid);

// Measures from construction to Stop() (or AddTo()). Pids <= 0 are not
// measured: without --start there is no local spoold or PostgreSQL.
class CpuMeter {
 public:
  CpuMeter(int spoold_pid, int postmaster_pid);

  // CPU seconds at the start of the interval.
  double spoold_start() const { return spoold_; }
  double pg_start() const { return pg_; }
  // Ends the measured interval (AddTo reports up to here).
  void Stop();
  // Adds cpu_s_bench and, when measured, cpu_s_spoold and cpu_s_postgres.
  void AddTo(Report& r);

 private:
  static double SelfCpu();

  const int spoold_pid_;
  const int postmaster_pid_;
  bool stopped_ = false;
  double self_ = 0, spoold_ = 0, pg_ = 0;
};

}  // namespace spool::bench
