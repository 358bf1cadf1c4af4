#include "tests/services/spoold/api_helpers.h"

#include <pqxx/pqxx>
#include <regex>
#include <thread>

#include "absl/time/clock.h"

namespace spool::testing {

void ExecSql(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  tx.exec(sql);
}

int64_t QueryInt(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  return tx.exec1(sql)[0].as<int64_t>();
}

int64_t CountExistingJobs(const std::string& url,
                          const std::set<std::string>& ids) {
  if (ids.empty()) return 0;
  std::string list;
  for (const auto& id : ids) {
    if (!list.empty()) list += ",";
    list += id;
  }
  return QueryInt(url,
                  "SELECT count(*) FROM spool_jobs WHERE id IN (" + list + ")");
}

::testing::AssertionResult WaitForQueryInt(const std::string& url,
                                           const std::string& sql, int64_t want,
                                           absl::string_view what) {
  int64_t last = 0;
  ::testing::AssertionResult r = WaitUntil(
      [&] {
        last = QueryInt(url, sql);
        return last == want;
      },
      absl::Seconds(30), what);
  if (!r) r << " (" << sql << " returned " << last << ", want " << want << ")";
  return r;
}

WakeUp LeaseParkedThenEnqueue(Api& waiter, int waiter_metrics_port,
                              Api& enqueuer, const std::string& queue) {
  WakeUp w;
  absl::Time returned;
  std::thread poll([&] {
    w.got = waiter.LeaseJobs(queue, 1, absl::Seconds(25));
    returned = absl::Now();
  });
  // Parked: its first lease query found nothing.
  w.parked = WaitForLongPollsWaiting(waiter_metrics_port, 1);
  const absl::Time sent = absl::Now();
  w.enqueued_id = enqueuer.MustEnqueue(queue, "wake");
  poll.join();
  w.latency = returned - sent;
  return w;
}

::testing::AssertionResult WaitUntil(const std::function<bool()>& done,
                                     absl::Duration timeout,
                                     absl::string_view what) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) {
      return ::testing::AssertionFailure()
             << "gave up after " << absl::FormatDuration(timeout)
             << " waiting for " << what;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::string> MetricsFlags() {
  return {"--metrics_listen=127.0.0.1:0", "--log_level=info"};
}

std::vector<std::string> WithMetrics(std::vector<std::string> flags) {
  for (std::string& f : MetricsFlags()) flags.push_back(std::move(f));
  return flags;
}

std::vector<std::string> WakeUpOnlyFlags() {
  return WithMetrics({"--fallback_poll=60s", "--maintenance_interval=60s"});
}

absl::StatusOr<int> MetricsPort(const SpooldProcess& server) {
  // The whole log: the line is written once at start-up, before SERVING.
  auto log = ReadFile(server.LogPath());
  if (!log.ok()) return log.status();
  // logfmt (msg="metrics listening" ... port=N) or JSON ("port":"N").
  static const std::regex kLine(
      R"re(msg"?[=:]"metrics listening".*?\bport"?[=:]"?(\d+))re");
  int port = 0;
  for (std::sregex_iterator it(log->begin(), log->end(), kLine), end; it != end;
       ++it) {
    port = std::stoi((*it)[1].str());  // The last run's (after Restart()).
  }
  if (port == 0) {
    return absl::NotFoundError(
        "no \"metrics listening\" line in spoold's log (started with "
        "MetricsFlags()?)");
  }
  return port;
}

absl::StatusOr<double> ScrapeMetric(int metrics_port, const std::string& name,
                                    const Labels& match) {
  auto page = HttpGet(metrics_port, "/metrics");
  if (!page.ok()) return page.status();
  if (page->status != 200) {
    return absl::InternalError(
        absl::StrCat("/metrics answered HTTP ", page->status));
  }
  auto parsed = ParsePrometheusText(page->body);
  if (!parsed.ok()) return parsed.status();
  return parsed->Sum(name, match);
}

::testing::AssertionResult WaitForLongPollsWaiting(int metrics_port, int n,
                                                   absl::Duration timeout) {
  absl::StatusOr<double> last = 0.0;
  ::testing::AssertionResult r = WaitUntil(
      [&] {
        last = ScrapeMetric(metrics_port, "spool_long_polls_waiting");
        return last.ok() && *last == n;
      },
      timeout, absl::StrCat("spool_long_polls_waiting == ", n));
  if (!r) {
    r << " (last scrape: "
      << (last.ok() ? absl::StrCat(*last) : last.status().ToString()) << ")";
  }
  return r;
}

}  // namespace spool::testing
