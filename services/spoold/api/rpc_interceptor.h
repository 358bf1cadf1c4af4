// A gRPC server interceptor that sees every call's final status, on every
// service spoold serves: it logs failures (warning for server-side ones,
// debug for client errors, rate-limited) and reports each call's method,
// code and latency to an RpcObserver, for metrics. It leaves the handlers
// untouched and costs one small allocation per call.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string_view>

#include "absl/time/time.h"

namespace spool::api {

class RpcObserver {
 public:
  virtual ~RpcObserver() = default;
  // `service` and `method` are bounded: the names of a method compiled into
  // spoold, or "unknown". Called on gRPC threads; must be cheap.
  virtual void OnRpcDone(std::string_view service, std::string_view method,
                         grpc::StatusCode code, absl::Duration took) = 0;
};

// `observer` may be null (logging only); it must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcInterceptorFactory(RpcObserver* observer);

// "OK", "INVALID_ARGUMENT", ... ("UNKNOWN" for values outside the enum).
std::string_view StatusCodeName(grpc::StatusCode code);

// True for codes that mean the server (or its database) failed rather than
// the caller: INTERNAL, UNAVAILABLE, UNKNOWN, DATA_LOSS.
bool IsServerError(grpc::StatusCode code);

}  // namespace spool::api
