// A stand-in for spoold, used to test SpooldProcess without a database: it
// serves grpc.health.v1 (JobService calls answer UNIMPLEMENTED), echoes its
// arguments to stderr, exits 0 on SIGTERM, and reports NOT_SERVING after
// SIGUSR1 and SERVING again after SIGUSR2.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "spool/v1/spool.grpc.pb.h"

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:50051";
  for (int i = 0; i < argc; ++i) {
    std::fprintf(stderr, "fake_spoold arg: %s\n", argv[i]);
    std::string_view arg(argv[i]);
    if (arg.starts_with("--listen=")) listen = arg.substr(9);
  }

  // Handled synchronously below; blocked before gRPC starts its threads.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  // Like spoold: a taken port is refused, never shared (SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Every JobService call answers UNIMPLEMENTED; a sync service is also what
  // lets the default health service run.
  spool::v1::JobService::Service job_service;
  builder.RegisterService(&job_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "fake_spoold: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::fprintf(stderr, "spoold listening on %s\n", listen.c_str());

  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGUSR1 || sig == SIGUSR2) {
      server->GetHealthCheckService()->SetServingStatus(sig == SIGUSR2);
      continue;
    }
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(1));
    server->Wait();
    return 0;
  }
}
