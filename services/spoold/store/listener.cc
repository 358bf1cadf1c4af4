#include "store/listener.h"

#include <algorithm>
#include <exception>
#include <pqxx/pqxx>

#include "absl/time/clock.h"
#include "base/log.h"
#include "store/pg_error.h"

namespace spool::store {
namespace {

class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, const std::string& channel,
           const std::function<void(const std::string&)>& fn)
      : pqxx::notification_receiver(conn, channel), fn_(fn) {}
  void operator()(const std::string& payload, int) override { fn_(payload); }

 private:
  const std::function<void(const std::string&)>& fn_;
};

}  // namespace

Listener::Listener(Options options) : options_(std::move(options)) {}

Listener::~Listener() { Stop(); }

void Listener::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Listener::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Listener::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  bool first = true;
  while (!stop_) {
    try {
      pqxx::connection conn(options_.database_url);
      Receiver receiver(conn, options_.channel, options_.on_notify);
      // The receiver's LISTEN is issued lazily; force it now.
      conn.get_notifs();
      {
        pqxx::nontransaction tx(conn);
        tx.exec("SELECT 1");
      }
      connected_ = true;
      backoff = absl::Milliseconds(100);
      if (!first) {
        LogInfo("listener reconnected", {{"channel", options_.channel}});
        if (options_.on_reconnect) options_.on_reconnect();
      }
      first = false;
      while (!stop_) {
        conn.await_notification(0, 200000);
        if (!conn.is_open()) throw pqxx::broken_connection();
      }
    } catch (...) {
      // Whatever failed, the connection is replaced. The reason is logged
      // once per outage, not for every failed reconnect.
      absl::Status s = PgErrorToStatus(
          std::current_exception(),
          {.op = "listen", .connection_open = false, .log = connected_},
          nullptr);
      if (connected_) {
        LogWarning("listener connection lost",
                   {{"channel", options_.channel}, {"error", s.message()}});
      }
      connected_ = false;
      first = false;
      absl::Time until = absl::Now() + backoff;
      while (!stop_ && absl::Now() < until)
        absl::SleepFor(absl::Milliseconds(20));
      backoff = std::min(backoff * 2, absl::Seconds(2));
    }
  }
  connected_ = false;
}

}  // namespace spool::store
