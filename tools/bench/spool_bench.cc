// spool-bench: Spool's load generator. Bounded in count and time, loopback
// only. Scenarios:
//   rpc_ceiling  as enqueue, but gRPC health checks (no database): the
//            bound gRPC itself puts on single-job RPCs on this machine
//   enqueue  N concurrent single-job Enqueue callers (raw async gRPC)
//   batch    EnqueueBatch of --batch_size jobs from a few callers
//   process  pre-fill --process_jobs, then M worker *processes* built on the
//            worker SDK with no-op handlers drain them; every job is counted
//            by id and must be handled exactly once
//   latency  Enqueue -> handler start at a fixed trickle rate, idle
//            long-polling SDK workers; p50/p90/p99/max
//   mixed    producers and workers at once for a set time, random priorities,
//            --retry_percent of first attempts retried; exact-once checked
//   idle     --idle_polls concurrent idle long-polls; spoold's threads and
//            database connections while they wait (needs --start)
// With --start it runs its own throwaway PostgreSQL (tools/pg) and spoold;
// otherwise it targets --target. --max_depth (with --start) limits each
// scenario's queue, to measure depth-limited queues. Prints one summary line
// per scenario and, with --json, one JSON object per line. Exits 1 if any count
// is wrong.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "spool/client.h"
#include "spool/v1/spool.grpc.pb.h"
#include "spool/worker.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "spoold address(es), comma-separated (ignored with --start).");
ABSL_FLAG(bool, start, false,
          "Start a throwaway PostgreSQL and spoold for the run.");
ABSL_FLAG(std::string, spoold, "build/services/spoold/spoold",
          "spoold binary for --start.");
ABSL_FLAG(std::string, pg_script, "tools/pg", "tools/pg script for --start.");
ABSL_FLAG(std::vector<std::string>, spoold_flags, {},
          "Extra spoold flags for --start (comma-separated).");
ABSL_FLAG(std::vector<std::string>, scenarios,
          std::vector<std::string>({"rpc_ceiling", "enqueue", "batch",
                                    "process", "latency", "mixed", "idle"}),
          "Scenarios to run, in order.");
ABSL_FLAG(bool, quick, false, "Small counts for a smoke run.");
ABSL_FLAG(int64_t, max_depth, 0,
          "With --start: each scenario's queue gets this max depth (0: none) "
          "before it runs.");
ABSL_FLAG(bool, json, false, "Also print one JSON object per scenario.");
ABSL_FLAG(int, callers, 64, "enqueue: concurrent single-job callers.");
ABSL_FLAG(int, client_threads, 2,
          "enqueue, rpc_ceiling: client threads, each with its own "
          "completion queue and connection.");
ABSL_FLAG(int, enqueue_jobs, 100000, "enqueue: jobs in total.");
ABSL_FLAG(int, batch_size, 1000, "batch: jobs per EnqueueBatch.");
ABSL_FLAG(int, batch_callers, 4, "batch: concurrent callers.");
ABSL_FLAG(int, batch_jobs, 200000, "batch: jobs in total.");
ABSL_FLAG(int, process_jobs, 20000, "process: pre-filled jobs.");
ABSL_FLAG(int, workers, 2, "process: worker processes.");
ABSL_FLAG(int, worker_concurrency, 256, "process: handler slots per worker.");
ABSL_FLAG(int, latency_rate, 200, "latency: jobs per second.");
ABSL_FLAG(absl::Duration, latency_duration, absl::Seconds(10),
          "latency: how long to trickle.");
ABSL_FLAG(int, latency_workers, 4, "latency: idle long-polling handlers.");
ABSL_FLAG(absl::Duration, mixed_duration, absl::Seconds(10),
          "mixed: how long producers run.");
ABSL_FLAG(int, mixed_rate, 2000, "mixed: jobs per second enqueued.");
ABSL_FLAG(int, retry_percent, 5, "mixed: first attempts that ask to retry.");
ABSL_FLAG(int, idle_polls, 1000, "idle: concurrent idle long-polls.");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(5),
          "Upper bound for any one scenario.");
// Internal: the worker-process mode of `process`.
ABSL_FLAG(std::string, worker_queue, "", "internal");
ABSL_FLAG(std::string, worker_ids_out, "", "internal");

namespace spool::bench {
namespace {

using Clock = absl::Time;

std::atomic<bool> g_failed{false};

// The SDK logs each retry; the bench asks for retries, so keep only errors.
void QuietLog(std::string_view line) {
  if (line.find("level=error") != std::string_view::npos) {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  }
}

void Fail(const std::string& what) {
  g_failed = true;
  std::fprintf(stderr, "spool-bench: FAIL: %s\n", what.c_str());
}

std::string RunId() {
  absl::BitGen gen;
  return absl::StrCat(absl::Hex(absl::Uniform<uint32_t>(gen)));
}

// One scenario's result: printed as "name: k=v ..." and as JSON.
struct Report {
  std::string scenario;
  std::vector<std::pair<std::string, std::string>> fields;
  template <typename T>
  void Add(const std::string& k, const T& v) {
    fields.emplace_back(k, absl::StrCat(v));
  }
  void Add(const std::string& k, double v) {
    fields.emplace_back(k, absl::StrFormat("%.1f", v));
  }
  void Print() const {
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
};

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  // Separate channels get separate TCP connections.
  args.SetInt("bench.channel_id", rand());
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

google::protobuf::Duration Dur(absl::Duration d) {
  google::protobuf::Duration out;
  out.set_seconds(absl::ToInt64Seconds(d));
  out.set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(d - absl::Seconds(out.seconds()))));
  return out;
}

// ---------------------------------------------------------------------------
// A throwaway PostgreSQL + spoold (--start).
class LocalServer {
 public:
  absl::Status Start() {
    char tmpl[] = "/tmp/spool-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
    dir_ = tmpl;
    pg_port_ = FreePort();
    port_ = FreePort();
    std::string cmd = absl::StrCat(absl::GetFlag(FLAGS_pg_script), " start ",
                                   dir_, "/pg ", pg_port_, " >/dev/null");
    if (system(cmd.c_str()) != 0) {
      return absl::UnavailableError("tools/pg start failed");
    }
    url_ = absl::StrCat("postgresql://spool@127.0.0.1:", pg_port_, "/postgres");
    std::vector<std::string> args = {absl::GetFlag(FLAGS_spoold),
                                     absl::StrCat("--database_url=", url_),
                                     absl::StrCat("--listen=127.0.0.1:", port_),
                                     "--migrate",
                                     "--metrics_listen=",
                                     "--log_level=warning"};
    for (const auto& f : absl::GetFlag(FLAGS_spoold_flags)) args.push_back(f);
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    auto channel = MakeChannel(target());
    auto health = grpc::health::v1::Health::NewStub(channel);
    absl::Time until = absl::Now() + absl::Seconds(30);
    while (absl::Now() < until) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(1));
      grpc::health::v1::HealthCheckRequest req;
      grpc::health::v1::HealthCheckResponse resp;
      if (health->Check(&ctx, req, &resp).ok() &&
          resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
        return absl::OkStatus();
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::DeadlineExceededError("spoold did not become healthy");
  }

  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::string cmd = absl::StrCat(absl::GetFlag(FLAGS_pg_script), " stop ",
                                     dir_, "/pg >/dev/null; rm -rf ", dir_);
      (void)system(cmd.c_str());
      dir_.clear();
    }
  }
  ~LocalServer() { Stop(); }

  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  const std::string& url() const { return url_; }
  int pid() const { return pid_; }

 private:
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
  }
  std::string dir_, url_;
  int pg_port_ = 0, port_ = 0;
  pid_t pid_ = -1;
};

// Reads "Key:  N kB"-style lines of /proc/PID/status.
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

// CPU seconds (user + system) of a process and of all its threads, from
// /proc/PID/stat; -1 when unknown. With `reaped`, plus its children that
// exited and were waited for: PostgreSQL backends that ended during a
// scenario still count, in the postmaster's total.
double ProcCpuSeconds(int pid, bool reaped = false) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(f)),
                   std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::vector<std::string> fields =
      absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
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

// CPU seconds of every process named `comm` (e.g. all postgres backends).
double CommCpuSeconds(const std::string& comm) {
  double total = 0;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  while (dirent* e = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    std::ifstream c(absl::StrCat("/proc/", pid, "/comm"));
    std::string name;
    if (c && std::getline(c, name) && name == comm) {
      total += std::max(0.0, ProcCpuSeconds(pid, /*reaped=*/true));
    }
  }
  closedir(proc);
  return total;
}

// Where the CPU went during a scenario: this process (the load generator,
// including worker processes it reaped), spoold, and PostgreSQL.
class CpuMeter {
 public:
  explicit CpuMeter(int spoold_pid) : spoold_pid_(spoold_pid) { Start(); }
  void Start() {
    self_ = SelfCpu();
    spoold_ = spoold_pid_ > 0 ? ProcCpuSeconds(spoold_pid_) : -1;
    pg_ = spoold_pid_ > 0 ? CommCpuSeconds("postgres") : -1;
  }
  double spoold_start() const { return spoold_; }
  double pg_start() const { return pg_; }
  // Ends the measured interval (AddTo reports up to here).
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    self_ = SelfCpu() - self_;
    if (spoold_pid_ > 0) {
      spoold_ = ProcCpuSeconds(spoold_pid_) - spoold_;
      pg_ = CommCpuSeconds("postgres") - pg_;
    }
  }
  void AddTo(Report& r) {
    Stop();
    r.Add("cpu_s_bench", self_);
    if (spoold_pid_ > 0) {
      r.Add("cpu_s_spoold", spoold_);
      r.Add("cpu_s_postgres", pg_);
    }
  }

 private:
  static double SelfCpu() {
    rusage self{}, children{};
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    auto secs = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
    return secs(self.ru_utime) + secs(self.ru_stime) + secs(children.ru_utime) +
           secs(children.ru_stime);
  }
  int spoold_pid_;
  bool stopped_ = false;
  double self_ = 0, spoold_ = 0, pg_ = 0;
};

int g_spoold_pid = -1;

// ---------------------------------------------------------------------------
// How many of `ids` were never seen in `seen` (id -> times), and how many
// extra times the others were.
struct ExactOnce {
  int lost = 0;
  int doubled = 0;
};
ExactOnce CheckExactlyOnce(const std::vector<std::string>& ids,
                           const std::map<std::string, int>& seen) {
  ExactOnce out;
  for (const auto& id : ids) {
    auto it = seen.find(id);
    if (it == seen.end())
      ++out.lost;
    else if (it->second > 1)
      out.doubled += it->second - 1;
  }
  return out;
}

// Vacuums and analyzes the jobs table (as pgbench vacuums before a run), so
// a scenario does not pay for an autovacuum of the previous one's rows, then
// lets the machine go quiet.
void Settle(const std::string& url) {
  try {
    pqxx::connection conn(url);
    pqxx::nontransaction tx(conn);
    tx.exec("VACUUM (ANALYZE) spool_jobs");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spool-bench: settling the database: %s\n", e.what());
  }
  absl::SleepFor(absl::Seconds(1));
}

// Creates `queue` with a max depth (spoold reads it on the queue's first use).
absl::Status LimitQueue(const std::string& url, const std::string& queue,
                        int64_t max_depth) {
  try {
    pqxx::connection conn(url);
    pqxx::nontransaction tx(conn);
    tx.exec_params(
        "INSERT INTO spool_queues (name, max_depth) VALUES ($1, $2) "
        "ON CONFLICT (name) DO UPDATE SET max_depth = excluded.max_depth",
        queue, max_depth);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("setting the max depth of ", queue, ": ", e.what()));
  }
}

// Keeps `callers` unary calls in flight until `total` were issued (or
// --timeout passed), on --client_threads completion queues, each drained by
// one thread and owning one channel: the leanest client gRPC offers, so the
// load generator takes as little of the machine as it can. `start(stub, req,
// resp, ctx, cq)` starts one call; `done(resp)` sees each OK response.
template <typename Stub, typename Req, typename Resp>
struct UnaryLoad {
  std::function<std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>>(
      Stub&, grpc::ClientContext*, const Req&, grpc::CompletionQueue*)>
      start;
  std::function<void(Req&)> fill;
  std::function<void(const Resp&)> done;
  int ok = 0;
  int failed = 0;
  absl::Duration took;

  void Run(const std::vector<std::string>& targets, int callers, int total) {
    const int threads =
        std::max(1, std::min(callers, absl::GetFlag(FLAGS_client_threads)));
    struct Call {
      grpc::ClientContext ctx;
      Req req;
      Resp resp;
      grpc::Status status;
      std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader;
    };
    std::atomic<int> issued{0}, oks{0}, fails{0};
    const absl::Time deadline = absl::Now() + absl::GetFlag(FLAGS_timeout);
    absl::Mutex done_mu;
    std::vector<std::thread> pool;
    const absl::Time begin = absl::Now();
    for (int t = 0; t < threads; ++t) {
      const int mine = callers / threads + (t < callers % threads ? 1 : 0);
      pool.emplace_back([&, t, mine] {
        auto stub =
            std::make_unique<Stub>(MakeChannel(targets[t % targets.size()]));
        grpc::CompletionQueue cq;
        auto issue = [&]() -> bool {
          if (issued.fetch_add(1) >= total || absl::Now() > deadline) {
            return false;
          }
          auto* c = new Call;
          fill(c->req);
          c->ctx.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::seconds(30));
          c->reader = start(*stub, &c->ctx, c->req, &cq);
          c->reader->StartCall();
          c->reader->Finish(&c->resp, &c->status, c);
          return true;
        };
        int in_flight = 0;
        for (int i = 0; i < mine; ++i) in_flight += issue() ? 1 : 0;
        void* tag;
        bool ok_tag;
        while (in_flight > 0 && cq.Next(&tag, &ok_tag)) {
          auto* c = static_cast<Call*>(tag);
          --in_flight;
          if (c->status.ok()) {
            ++oks;
            if (done) {
              absl::MutexLock lock(&done_mu);
              done(c->resp);
            }
          } else {
            ++fails;
          }
          delete c;
          in_flight += issue() ? 1 : 0;
        }
        cq.Shutdown();
        while (cq.Next(&tag, &ok_tag)) {
        }
      });
    }
    for (auto& t : pool) t.join();
    took = absl::Now() - begin;
    ok = oks.load();
    failed = fails.load();
  }

  // Run() with --callers callers, measured, printed as `scenario` with the
  // calls counted as `unit`.
  void RunAndReport(const std::string& scenario, const std::string& unit,
                    const std::vector<std::string>& targets, int total) {
    const int callers = absl::GetFlag(FLAGS_callers);
    CpuMeter cpu(g_spoold_pid);
    Run(targets, callers, total);
    Report r{scenario};
    cpu.AddTo(r);
    r.Add("callers", callers);
    r.Add(unit, ok);
    r.Add("failed", failed);
    r.Add("seconds", absl::ToDoubleSeconds(took));
    r.Add(unit + "_per_s", ok / absl::ToDoubleSeconds(took));
    r.Print();
  }
};

// enqueue: `callers` single-job Enqueue calls kept in flight.
void RunEnqueue(const std::vector<std::string>& targets,
                const std::string& queue) {
  const int total =
      absl::GetFlag(FLAGS_quick) ? 2000 : absl::GetFlag(FLAGS_enqueue_jobs);
  std::set<std::string> ids;
  UnaryLoad<v1::JobService::Stub, v1::EnqueueRequest, v1::EnqueueResponse> load;
  load.start = [](v1::JobService::Stub& stub, grpc::ClientContext* ctx,
                  const v1::EnqueueRequest& req, grpc::CompletionQueue* cq) {
    return stub.PrepareAsyncEnqueue(ctx, req, cq);
  };
  load.fill = [&](v1::EnqueueRequest& req) {
    req.mutable_job()->set_queue(queue);
    req.mutable_job()->set_payload("x");
  };
  load.done = [&](const v1::EnqueueResponse& resp) {
    ids.insert(resp.job_id());
  };
  load.RunAndReport("enqueue", "jobs", targets, total);
  if (load.failed != 0 || load.ok != total ||
      static_cast<int>(ids.size()) != total) {
    Fail(absl::StrCat("enqueue: ", load.ok, " ok, ", load.failed, " failed, ",
                      ids.size(), " distinct ids of ", total));
  }
}

// rpc_ceiling: as `enqueue`, but calling spoold's gRPC health check, which
// touches no database: what gRPC itself allows on this machine with the same
// client, callers and server, the bound any single-job RPC can reach.
void RunRpcCeiling(const std::vector<std::string>& targets) {
  const int total =
      absl::GetFlag(FLAGS_quick) ? 2000 : absl::GetFlag(FLAGS_enqueue_jobs);
  UnaryLoad<grpc::health::v1::Health::Stub,
            grpc::health::v1::HealthCheckRequest,
            grpc::health::v1::HealthCheckResponse>
      load;
  load.start = [](grpc::health::v1::Health::Stub& stub,
                  grpc::ClientContext* ctx,
                  const grpc::health::v1::HealthCheckRequest& req,
                  grpc::CompletionQueue* cq) {
    return stub.PrepareAsyncCheck(ctx, req, cq);
  };
  load.fill = [](grpc::health::v1::HealthCheckRequest&) {};
  load.RunAndReport("rpc_ceiling", "calls", targets, total);
  if (load.failed != 0 || load.ok != total) {
    Fail(absl::StrCat("rpc_ceiling: ", load.ok, " ok, ", load.failed,
                      " failed of ", total));
  }
}

// batch: EnqueueBatch of batch_size jobs from batch_callers callers.
std::vector<std::string> EnqueueBatches(const std::vector<std::string>& targets,
                                        const std::string& queue, int total,
                                        int batch_size, int callers,
                                        int* failed) {
  std::atomic<int> next{0};
  absl::Mutex mu;
  std::vector<std::string> ids;
  std::atomic<int> fails{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      auto stub =
          v1::JobService::NewStub(MakeChannel(targets[c % targets.size()]));
      while (true) {
        int begin = next.fetch_add(batch_size);
        if (begin >= total) return;
        int n = std::min(batch_size, total - begin);
        v1::EnqueueBatchRequest req;
        for (int i = 0; i < n; ++i) {
          v1::JobSpec* j = req.add_jobs();
          j->set_queue(queue);
          j->set_payload(absl::StrCat(begin + i));
        }
        v1::EnqueueBatchResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
        grpc::Status s = stub->EnqueueBatch(&ctx, req, &resp);
        if (!s.ok()) {
          fails += n;
          std::fprintf(stderr, "EnqueueBatch: %s\n", s.error_message().c_str());
          continue;
        }
        absl::MutexLock lock(&mu);
        for (const auto& r : resp.results()) ids.push_back(r.job_id());
      }
    });
  }
  for (auto& t : threads) t.join();
  *failed = fails.load();
  return ids;
}

void RunBatch(const std::vector<std::string>& targets,
              const std::string& queue) {
  const int total =
      absl::GetFlag(FLAGS_quick) ? 5000 : absl::GetFlag(FLAGS_batch_jobs);
  const int size = absl::GetFlag(FLAGS_batch_size);
  const int callers = absl::GetFlag(FLAGS_batch_callers);
  int failed = 0;
  CpuMeter cpu(g_spoold_pid);
  absl::Time start = absl::Now();
  auto ids = EnqueueBatches(targets, queue, total, size, callers, &failed);
  absl::Duration took = absl::Now() - start;
  Report r{"batch"};
  cpu.AddTo(r);
  r.Add("batch_size", size);
  r.Add("callers", callers);
  r.Add("jobs", ids.size());
  r.Add("failed", failed);
  r.Add("seconds", absl::ToDoubleSeconds(took));
  r.Add("jobs_per_s", ids.size() / absl::ToDoubleSeconds(took));
  r.Print();
  if (failed != 0 ||
      static_cast<int>(std::set<std::string>(ids.begin(), ids.end()).size()) !=
          total) {
    Fail(absl::StrCat("batch: ", ids.size(), " ids, ", failed, " failed of ",
                      total));
  }
}

// ---------------------------------------------------------------------------
// The worker process of `process`: no-op handlers. It connects, prints
// "ready", and starts leasing only when a line arrives on stdin, so the timed
// run measures the queue, not process start-up. As it goes it prints
// "handled N acked M" lines (M: completions spoold answered), and at SIGTERM
// stops (flushing acks) and writes every handled job id to --worker_ids_out.
class AckCounter : public spool::WorkerObserver {
 public:
  void OnAckLatency(absl::Duration, int batch_size) override {
    acked_ += batch_size;
  }
  int64_t acked() const { return acked_.load(); }

 private:
  std::atomic<int64_t> acked_{0};
};

int WorkerMain(const std::vector<std::string>& targets) {
  InstallSignalHandlers();
  auto acks = std::make_shared<AckCounter>();
  WorkerOptions options;
  options.client.targets = targets;
  options.log_sink = QuietLog;
  options.worker_id = absl::StrCat("bench-", getpid());
  options.observer = acks;
  Worker worker(options);
  absl::Mutex mu;
  std::vector<std::string> handled;
  std::atomic<int64_t> count{0};
  QueueOptions qo;
  qo.concurrency = absl::GetFlag(FLAGS_worker_concurrency);
  qo.max_wait = absl::Seconds(5);
  absl::Status s = worker.Register(
      absl::GetFlag(FLAGS_worker_queue),
      [&](const Job& job) {
        {
          absl::MutexLock lock(&mu);
          handled.push_back(job.id);
        }
        ++count;
        return Outcome::Success();
      },
      qo);
  if (s.ok()) {
    ClientOptions co;
    co.targets = targets;
    auto client = Client::Connect(co);
    if (!client.ok()) {
      s = client.status();
    } else if (!client->WaitForConnected(absl::Seconds(10))) {
      s = absl::UnavailableError("spoold unreachable");
    }
  }
  if (!s.ok()) {
    std::fprintf(stderr, "worker: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  char go[16];
  if (read(0, go, sizeof go) <= 0) return 1;
  if (!(s = worker.Start()).ok()) {
    std::fprintf(stderr, "worker: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  int64_t last_handled = -1, last_acked = -1;
  while (WaitForSignal(absl::Milliseconds(2)) == 0) {
    const int64_t now_handled = count.load(), now_acked = acks->acked();
    if (now_handled != last_handled || now_acked != last_acked) {
      std::printf("handled %lld acked %lld\n",
                  static_cast<long long>(now_handled),
                  static_cast<long long>(now_acked));
      std::fflush(stdout);
      last_handled = now_handled;
      last_acked = now_acked;
    }
  }
  s = worker.Stop(absl::Seconds(10));
  std::ofstream out(absl::GetFlag(FLAGS_worker_ids_out));
  absl::MutexLock lock(&mu);
  for (const auto& id : handled) out << id << "\n";
  return s.ok() ? 0 : 1;
}

struct ChildWorker {
  pid_t pid = -1;
  int out_fd = -1;
  int in_fd = -1;  // a line here starts its leasing
  std::string ids_path;
  bool ready = false;
  int64_t handled = 0;
  int64_t acked = 0;
  std::string buffer;
};

ChildWorker SpawnWorker(const std::string& self, const std::string& targets,
                        const std::string& queue, const std::string& ids_path) {
  int out[2], in[2];
  if (pipe(out) != 0) return {};
  if (pipe(in) != 0) {
    close(out[0]);
    close(out[1]);
    return {};
  }
  ChildWorker w;
  w.ids_path = ids_path;
  w.pid = fork();
  if (w.pid == 0) {
    dup2(out[1], 1);
    dup2(in[0], 0);
    close(out[0]);
    close(out[1]);
    close(in[0]);
    close(in[1]);
    std::vector<std::string> args = {
        self, absl::StrCat("--target=", targets),
        absl::StrCat("--worker_queue=", queue),
        absl::StrCat("--worker_ids_out=", ids_path),
        absl::StrCat("--worker_concurrency=",
                     absl::GetFlag(FLAGS_worker_concurrency))};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  close(in[0]);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  w.out_fd = out[0];
  w.in_fd = in[1];
  return w;
}

void PollWorker(ChildWorker& w) {
  char buf[4096];
  ssize_t n;
  while ((n = read(w.out_fd, buf, sizeof buf)) > 0) w.buffer.append(buf, n);
  size_t nl;
  while ((nl = w.buffer.find('\n')) != std::string::npos) {
    std::string line = w.buffer.substr(0, nl);
    w.buffer.erase(0, nl + 1);
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() == 1 && f[0] == "ready") w.ready = true;
    if (f.size() == 4 && f[0] == "handled" && f[2] == "acked") {
      (void)absl::SimpleAtoi(f[1], &w.handled);
      (void)absl::SimpleAtoi(f[3], &w.acked);
    }
  }
}

void RunProcess(const std::vector<std::string>& targets,
                const std::string& queue, const std::string& self) {
  const int total =
      absl::GetFlag(FLAGS_quick) ? 2000 : absl::GetFlag(FLAGS_process_jobs);
  const int nworkers = absl::GetFlag(FLAGS_workers);
  int failed = 0;
  auto ids = EnqueueBatches(targets, queue, total, 1000, 2, &failed);
  if (failed != 0 || static_cast<int>(ids.size()) != total) {
    Fail("process: pre-fill failed");
    return;
  }
  char tmpl[] = "/tmp/spool-bench-ids-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::vector<ChildWorker> workers;
  for (int i = 0; i < nworkers; ++i) {
    workers.push_back(SpawnWorker(self, absl::StrJoin(targets, ","), queue,
                                  absl::StrCat(dir, "/w", i)));
  }
  // Timed from the moment every worker process is up and connected until
  // spoold has answered the ack of every job.
  absl::Time ready_deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < ready_deadline &&
         !std::all_of(workers.begin(), workers.end(), [](ChildWorker& w) {
           PollWorker(w);
           return w.ready;
         })) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  double worker_cpu = 0;
  for (auto& w : workers) worker_cpu -= ProcCpuSeconds(w.pid);
  CpuMeter cpu(g_spoold_pid);
  absl::Time start = absl::Now();
  for (auto& w : workers) (void)!write(w.in_fd, "go\n", 3);
  absl::Time deadline = start + absl::GetFlag(FLAGS_timeout);
  int64_t handled = 0, acked = 0;
  while (absl::Now() < deadline) {
    handled = acked = 0;
    for (auto& w : workers) {
      PollWorker(w);
      handled += w.handled;
      acked += w.acked;
    }
    if (acked >= total) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::Duration took = absl::Now() - start;
  const double spoold_cpu =
      g_spoold_pid > 0 ? ProcCpuSeconds(g_spoold_pid) : -1;
  const double pg_cpu = g_spoold_pid > 0 ? CommCpuSeconds("postgres") : -1;
  for (auto& w : workers) worker_cpu += ProcCpuSeconds(w.pid);
  for (auto& w : workers) kill(w.pid, SIGTERM);
  int bad_exit = 0;
  for (auto& w : workers) {
    int status = 0;
    waitpid(w.pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++bad_exit;
    close(w.out_fd);
    close(w.in_fd);
  }
  std::map<std::string, int> count;
  for (auto& w : workers) {
    std::ifstream in(w.ids_path);
    std::string id;
    while (std::getline(in, id)) ++count[id];
  }
  const ExactOnce once = CheckExactlyOnce(ids, count);
  const int lost = once.lost, doubled = once.doubled;
  // Drained: nothing is left to lease.
  auto stub = v1::JobService::NewStub(MakeChannel(targets[0]));
  v1::LeaseRequest lr;
  lr.set_queue(queue);
  lr.set_max_jobs(256);
  v1::LeaseResponse resp;
  grpc::ClientContext ctx;
  grpc::Status ls = stub->Lease(&ctx, lr, &resp);
  (void)system(absl::StrCat("rm -rf ", dir).c_str());
  Report r{"process"};
  // Up to the moment the last job was handled: the workers' CPU (read before
  // they were stopped), spoold's and PostgreSQL's.
  r.Add("cpu_s_workers", worker_cpu);
  if (g_spoold_pid > 0) {
    r.Add("cpu_s_spoold", spoold_cpu - cpu.spoold_start());
    r.Add("cpu_s_postgres", pg_cpu - cpu.pg_start());
  }
  r.Add("workers", nworkers);
  r.Add("concurrency", absl::GetFlag(FLAGS_worker_concurrency));
  r.Add("jobs", total);
  r.Add("handled", handled);
  r.Add("acked", acked);
  r.Add("lost", lost);
  r.Add("doubled", doubled);
  r.Add("seconds", absl::ToDoubleSeconds(took));
  r.Add("jobs_per_s", total / absl::ToDoubleSeconds(took));
  r.Print();
  if (lost != 0 || doubled != 0 || bad_exit != 0 || acked != total ||
      !ls.ok() || resp.jobs_size() != 0) {
    Fail(absl::StrCat("process: lost=", lost, " doubled=", doubled,
                      " bad worker exits=", bad_exit,
                      " left=", resp.jobs_size()));
  }
}

// ---------------------------------------------------------------------------
// latency: enqueue at a fixed rate; handlers record call start -> handler.
double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i =
      std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

void RunLatency(const std::vector<std::string>& targets,
                const std::string& queue) {
  const int rate = absl::GetFlag(FLAGS_latency_rate);
  const absl::Duration duration = absl::GetFlag(FLAGS_quick)
                                      ? absl::Seconds(1)
                                      : absl::GetFlag(FLAGS_latency_duration);
  const int total = static_cast<int>(rate * absl::ToDoubleSeconds(duration));
  WorkerOptions wo;
  wo.client.targets = targets;
  wo.log_sink = QuietLog;
  wo.worker_id = "bench-latency";
  Worker worker(wo);
  absl::Mutex mu;
  std::vector<double> ms;
  std::set<std::string> seen;
  int doubled = 0;
  QueueOptions qo;
  qo.concurrency = absl::GetFlag(FLAGS_latency_workers);
  (void)worker.Register(
      queue,
      [&](const Job& job) {
        absl::Time now = absl::Now();
        int64_t sent_us = 0;
        (void)absl::SimpleAtoi(job.payload, &sent_us);
        absl::MutexLock lock(&mu);
        if (!seen.insert(job.id).second) ++doubled;
        ms.push_back(
            absl::ToDoubleMilliseconds(now - absl::FromUnixMicros(sent_us)));
        return Outcome::Success();
      },
      qo);
  if (!worker.Start().ok()) {
    Fail("latency: worker did not start");
    return;
  }
  absl::SleepFor(absl::Milliseconds(500));  // Let the long-polls park.
  auto client = Client::Connect(ClientOptions{.targets = targets});
  if (!client.ok()) {
    Fail("latency: no client");
    return;
  }
  int failed = 0;
  absl::Time start = absl::Now();
  for (int i = 0; i < total; ++i) {
    absl::Time due = start + i * absl::Seconds(1) / rate;
    absl::SleepFor(due - absl::Now());
    JobOptions j;
    j.queue = queue;
    j.payload = absl::StrCat(absl::ToUnixMicros(absl::Now()));
    if (!client->Enqueue(j).ok()) ++failed;
  }
  absl::Time until = absl::Now() + absl::Seconds(30);
  while (absl::Now() < until) {
    absl::MutexLock lock(&mu);
    if (static_cast<int>(ms.size()) >= total - failed) break;
    mu.Unlock();
    absl::SleepFor(absl::Milliseconds(10));
    mu.Lock();
  }
  (void)worker.Stop(absl::Seconds(10));
  absl::MutexLock lock(&mu);
  Report r{"latency"};
  r.Add("rate", rate);
  r.Add("jobs", total);
  r.Add("handled", ms.size());
  r.Add("p50_ms", Percentile(ms, 0.5));
  r.Add("p90_ms", Percentile(ms, 0.9));
  r.Add("p99_ms", Percentile(ms, 0.99));
  r.Add("max_ms", ms.empty() ? 0.0 : ms.back());
  r.Print();
  if (failed != 0 || static_cast<int>(seen.size()) != total || doubled != 0) {
    Fail(absl::StrCat("latency: handled ", seen.size(), " of ", total,
                      ", failed ", failed, ", doubled ", doubled));
  }
}

// mixed: producers and workers at once; 5 % of first attempts retry.
void RunMixed(const std::vector<std::string>& targets,
              const std::string& queue) {
  const absl::Duration duration = absl::GetFlag(FLAGS_quick)
                                      ? absl::Seconds(2)
                                      : absl::GetFlag(FLAGS_mixed_duration);
  const int rate = absl::GetFlag(FLAGS_mixed_rate);
  const int retry_percent = absl::GetFlag(FLAGS_retry_percent);
  WorkerOptions wo;
  wo.client.targets = targets;
  wo.log_sink = QuietLog;
  wo.worker_id = "bench-mixed";
  Worker worker(wo);
  absl::Mutex mu;
  std::map<std::string, int> succeeded;
  std::atomic<int> retried{0};
  QueueOptions qo;
  qo.concurrency = 64;
  (void)worker.Register(
      queue,
      [&](const Job& job) {
        // Deterministic per job: the same jobs retry however often it runs.
        if (job.attempt == 1 && std::hash<std::string>()(job.id) % 100 <
                                    static_cast<size_t>(retry_percent)) {
          ++retried;
          return Outcome::Retry(absl::ZeroDuration(), "bench retry");
        }
        absl::MutexLock lock(&mu);
        ++succeeded[job.id];
        return Outcome::Success();
      },
      qo);
  if (!worker.Start().ok()) {
    Fail("mixed: worker did not start");
    return;
  }
  std::vector<std::string> ids;
  absl::Mutex ids_mu;
  std::atomic<int> failed{0};
  std::vector<std::thread> producers;
  absl::Time start = absl::Now();
  constexpr int kProducers = 4;
  constexpr int kBatch = 20;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      auto client = Client::Connect(ClientOptions{.targets = targets});
      if (!client.ok()) return;
      absl::BitGen gen;
      const double per_producer = static_cast<double>(rate) / kProducers;
      for (int i = 0;; ++i) {
        absl::Time due = start + absl::Seconds(i * kBatch / per_producer);
        if (due > start + duration) return;
        absl::SleepFor(due - absl::Now());
        std::vector<JobOptions> batch(kBatch);
        for (auto& j : batch) {
          j.queue = queue;
          j.priority = absl::Uniform(gen, -5, 6);
        }
        auto r = client->EnqueueBatch(batch);
        if (!r.ok()) {
          failed += kBatch;
          continue;
        }
        absl::MutexLock lock(&ids_mu);
        for (const auto& e : *r) ids.push_back(e.job_id);
      }
    });
  }
  for (auto& t : producers) t.join();
  absl::Time until = absl::Now() + absl::GetFlag(FLAGS_timeout);
  while (absl::Now() < until) {
    absl::MutexLock lock(&mu);
    if (succeeded.size() >= ids.size()) break;
    mu.Unlock();
    absl::SleepFor(absl::Milliseconds(20));
    mu.Lock();
  }
  absl::Duration took = absl::Now() - start;
  (void)worker.Stop(absl::Seconds(10));
  absl::MutexLock lock(&mu);
  const ExactOnce once = CheckExactlyOnce(ids, succeeded);
  const int lost = once.lost, doubled = once.doubled;
  Report r{"mixed"};
  r.Add("seconds", absl::ToDoubleSeconds(took));
  r.Add("enqueued", ids.size());
  r.Add("succeeded", succeeded.size());
  r.Add("retried", retried.load());
  r.Add("lost", lost);
  r.Add("doubled", doubled);
  r.Add("jobs_per_s", ids.size() / absl::ToDoubleSeconds(took));
  r.Print();
  if (failed.load() != 0 || lost != 0 || doubled != 0) {
    Fail(absl::StrCat("mixed: failed=", failed.load(), " lost=", lost,
                      " doubled=", doubled));
  }
}

// idle: many idle long-polls; what they cost spoold.
void RunIdle(const std::vector<std::string>& targets, const std::string& queue,
             const LocalServer* server) {
  const int polls =
      absl::GetFlag(FLAGS_quick) ? 200 : absl::GetFlag(FLAGS_idle_polls);
  std::vector<std::unique_ptr<v1::JobService::Stub>> stubs;
  for (int i = 0; i < 8; ++i)
    stubs.push_back(
        v1::JobService::NewStub(MakeChannel(targets[i % targets.size()])));
  struct Poll {
    grpc::ClientContext ctx;
    v1::LeaseRequest req;
    v1::LeaseResponse resp;
  };
  std::vector<std::unique_ptr<Poll>> calls(polls);
  std::atomic<int> done{0}, ok{0};
  for (int i = 0; i < polls; ++i) {
    calls[i] = std::make_unique<Poll>();
    calls[i]->req.set_queue(queue);
    *calls[i]->req.mutable_wait() = Dur(absl::Seconds(5));
    stubs[i % stubs.size()]->async()->Lease(
        &calls[i]->ctx, &calls[i]->req, &calls[i]->resp, [&](grpc::Status s) {
          if (s.ok()) ++ok;
          ++done;
        });
  }
  absl::SleepFor(absl::Seconds(2));
  int64_t threads = -1, rss_kb = -1, connections = -1;
  if (server != nullptr) {
    threads = ProcStatus(server->pid(), "Threads");
    rss_kb = ProcStatus(server->pid(), "VmRSS");
    try {
      pqxx::connection conn(server->url());
      pqxx::nontransaction tx(conn);
      connections =
          tx.exec1(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid()")[0]
              .as<int64_t>();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "idle: %s\n", e.what());
    }
  }
  const int waiting = polls - done.load();
  absl::Time until = absl::Now() + absl::Seconds(30);
  while (done.load() < polls && absl::Now() < until)
    absl::SleepFor(absl::Milliseconds(20));
  Report r{"idle"};
  r.Add("polls", polls);
  r.Add("waiting_at_sample", waiting);
  r.Add("spoold_threads", threads);
  r.Add("db_connections", connections);
  r.Add("spoold_rss_mib", rss_kb < 0 ? -1.0 : rss_kb / 1024.0);
  r.Add("returned_ok", ok.load());
  r.Print();
  if (waiting != polls || ok.load() != polls) {
    Fail(absl::StrCat("idle: ", waiting, " waiting of ", polls, ", ", ok.load(),
                      " ok"));
  }
}

int Main(int argc, char** argv) {
  // As in spoold: no per-acquisition lock-order checks in a load generator.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "Spool's load generator; see the comment at the top of "
      "tools/bench/spool_bench.cc or docs/benchmarks.md.");
  absl::ParseCommandLine(argc, argv);
  std::vector<std::string> targets =
      absl::StrSplit(absl::GetFlag(FLAGS_target), ',', absl::SkipEmpty());
  if (!absl::GetFlag(FLAGS_worker_queue).empty()) return WorkerMain(targets);
  signal(SIGPIPE, SIG_IGN);

  if (absl::GetFlag(FLAGS_max_depth) < 0 ||
      (absl::GetFlag(FLAGS_max_depth) > 0 && !absl::GetFlag(FLAGS_start))) {
    std::fprintf(stderr,
                 "spool-bench: --max_depth must be at least 0 and needs "
                 "--start\n");
    return 2;
  }
  std::unique_ptr<LocalServer> server;
  if (absl::GetFlag(FLAGS_start)) {
    server = std::make_unique<LocalServer>();
    if (absl::Status s = server->Start(); !s.ok()) {
      std::fprintf(stderr, "spool-bench: %s\n",
                   std::string(s.message()).c_str());
      return 1;
    }
    targets = {server->target()};
    g_spoold_pid = server->pid();
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = '\0';
  const std::string run = RunId();
  bool first = true;
  for (const std::string& scenario : absl::GetFlag(FLAGS_scenarios)) {
    const std::string queue = absl::StrCat("bench-", scenario, "-", run);
    // With our own database: each scenario starts settled, not paying for
    // vacuuming the previous one's rows (the jobs it left stay).
    if (server != nullptr && !first) Settle(server->url());
    first = false;
    if (const int64_t depth = absl::GetFlag(FLAGS_max_depth); depth > 0) {
      if (absl::Status s = LimitQueue(server->url(), queue, depth); !s.ok()) {
        std::fprintf(stderr, "spool-bench: %s\n",
                     std::string(s.message()).c_str());
        return 1;
      }
    }
    if (scenario == "enqueue")
      RunEnqueue(targets, queue);
    else if (scenario == "rpc_ceiling")
      RunRpcCeiling(targets);
    else if (scenario == "batch")
      RunBatch(targets, queue);
    else if (scenario == "process")
      RunProcess(targets, queue, self);
    else if (scenario == "latency")
      RunLatency(targets, queue);
    else if (scenario == "mixed")
      RunMixed(targets, queue);
    else if (scenario == "idle")
      RunIdle(targets, queue, server.get());
    else {
      std::fprintf(stderr, "spool-bench: unknown scenario %s\n",
                   scenario.c_str());
      return 2;
    }
  }
  if (server != nullptr) {
    Report r{"spoold"};
    r.Add("peak_rss_mib", ProcStatus(server->pid(), "VmHWM") / 1024.0);
    r.Add("threads", ProcStatus(server->pid(), "Threads"));
    r.Print();
    server->Stop();
  }
  return g_failed.load() ? 1 : 0;
}

}  // namespace
}  // namespace spool::bench

int main(int argc, char** argv) { return spool::bench::Main(argc, argv); }
