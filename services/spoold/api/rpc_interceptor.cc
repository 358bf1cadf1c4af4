#include "api/rpc_interceptor.h"

#include <google/protobuf/descriptor.h>

#include <atomic>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/log.h"

namespace spool::api {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr std::string_view kUnknown = "unknown";

// Splits "/pkg.Service/Method" and keeps it only if such a method exists in
// this binary, so a client calling made-up methods cannot mint label values.
void ParseMethod(const char* full, std::string_view* service,
                 std::string_view* method) {
  *service = kUnknown;
  *method = kUnknown;
  if (full == nullptr) return;
  std::string_view path(full);
  if (path.size() < 4 || path[0] != '/') return;
  const size_t slash = path.find('/', 1);
  if (slash == std::string_view::npos || slash + 1 >= path.size()) return;
  std::string_view svc = path.substr(1, slash - 1);
  std::string_view m = path.substr(slash + 1);
  // gRPC's own health service is not a generated protobuf service here.
  bool known = svc == "grpc.health.v1.Health" && (m == "Check" || m == "Watch");
  if (!known) {
    std::string name(svc);
    name += '.';
    name += m;
    known =
        google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
            name) != nullptr;
  }
  if (known) {
    *service = svc;
    *method = m;
  }
}

// At most kBurst warnings per second; the rest are counted and reported with
// the next warning that gets through.
class WarningLimiter {
 public:
  // Returns true when the caller may log; *suppressed gets the number of
  // warnings dropped since the last one logged.
  bool Allow(int64_t* suppressed) {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (now - window_start_ >= absl::Seconds(1)) {
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ >= kBurst) {
      ++suppressed_;
      return false;
    }
    ++in_window_;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  static constexpr int kBurst = 10;
  absl::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int in_window_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

WarningLimiter& Limiter() {
  static WarningLimiter* limiter = new WarningLimiter();
  return *limiter;
}

class RpcInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(grpc::experimental::ServerRpcInfo* info, RpcObserver* observer)
      : observer_(observer), start_(absl::Now()) {
    ParseMethod(info->method(), &service_, &method_);
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      Report(methods->GetSendStatus());
    }
    methods->Proceed();
  }

 private:
  void Report(const grpc::Status& status) {
    const absl::Duration took = absl::Now() - start_;
    const grpc::StatusCode code = status.error_code();
    if (observer_ != nullptr)
      observer_->OnRpcDone(service_, method_, code, took);
    if (code == grpc::StatusCode::OK) return;
    if (IsServerError(code)) {
      int64_t suppressed = 0;
      if (!Limiter().Allow(&suppressed)) return;
      LogWarning("rpc failed", {{"method", method_},
                                {"code", StatusCodeName(code)},
                                {"error", status.error_message()},
                                {"ms", absl::ToInt64Milliseconds(took)},
                                {"suppressed_before", suppressed}});
    } else {
      LogDebug("rpc refused", {{"method", method_},
                               {"code", StatusCodeName(code)},
                               {"error", status.error_message()}});
    }
  }

  RpcObserver* const observer_;
  const absl::Time start_;
  std::string_view service_;
  std::string_view method_;
};

class RpcInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcInterceptorFactory(RpcObserver* observer) : observer_(observer) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcInterceptor(info, observer_);
  }

 private:
  RpcObserver* const observer_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcInterceptorFactory(RpcObserver* observer) {
  return std::make_unique<RpcInterceptorFactory>(observer);
}

std::string_view StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

bool IsServerError(grpc::StatusCode code) {
  return code == grpc::StatusCode::INTERNAL ||
         code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::UNKNOWN ||
         code == grpc::StatusCode::DATA_LOSS;
}

}  // namespace spool::api
