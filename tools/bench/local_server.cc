#include "tools/bench/local_server.h"

#include <cstdio>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace spool::bench {

absl::StatusOr<std::unique_ptr<LocalServer>> LocalServer::Start(
    const std::string& spoold_binary,
    const std::vector<std::string>& spoold_flags) {
  std::unique_ptr<LocalServer> server(new LocalServer);
  auto postgres = testing::TestPostgres::Start();
  if (!postgres.ok()) return postgres.status();
  server->postgres_ = *std::move(postgres);
  std::vector<std::string> flags = {"--log_level=warning"};
  flags.insert(flags.end(), spoold_flags.begin(), spoold_flags.end());
  auto spoold = testing::SpooldProcess::Start(server->url(), std::move(flags),
                                              spoold_binary);
  if (!spoold.ok()) return spoold.status();
  server->spoold_ = *std::move(spoold);
  return server;
}

void LocalServer::Stop() {
  if (spoold_ != nullptr) {
    if (spoold_->IsRunning()) {
      absl::StatusOr<int> code = spoold_->Terminate();
      if (!code.ok()) {
        std::fprintf(stderr, "spool-bench: stopping spoold: %s\n",
                     std::string(code.status().message()).c_str());
      }
    }
    spoold_.reset();
  }
  postgres_.reset();
}

void LocalServer::Settle() {
  try {
    pqxx::connection conn(url());
    pqxx::nontransaction tx(conn);
    tx.exec("VACUUM (ANALYZE) spool_jobs");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spool-bench: settling the database: %s\n", e.what());
  }
  absl::SleepFor(absl::Seconds(1));
}

absl::Status LocalServer::LimitQueue(const std::string& queue,
                                     int64_t max_depth) {
  try {
    pqxx::connection conn(url());
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

int64_t LocalServer::DatabaseConnections() {
  try {
    pqxx::connection conn(url());
    pqxx::nontransaction tx(conn);
    return tx
        .exec1(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid()")[0]
        .as<int64_t>();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "idle: %s\n", e.what());
    return -1;
  }
}

}  // namespace spool::bench
