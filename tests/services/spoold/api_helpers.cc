#include "tests/services/spoold/api_helpers.h"

#include <pqxx/pqxx>

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

}  // namespace spool::testing
