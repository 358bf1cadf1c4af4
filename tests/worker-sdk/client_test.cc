// spool::Client against an in-memory JobService: request mapping and the
// retry rule (idempotent calls retried on UNAVAILABLE; an Enqueue without
// idempotency key retried only while it provably was not sent).
#include "spool/client.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "fake_job_service.h"
#include "gmock/gmock.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "gtest/gtest.h"
#include "tcp_proxy.h"

namespace spool::testing {
namespace {

using ::testing::HasSubstr;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_shared<FakeJobService>();
    server_ = std::make_unique<FakeServer>(service_);
    ASSERT_TRUE(server_->ok());
  }

  Client Connect(std::vector<std::string> targets = {},
                 absl::Duration deadline = absl::Seconds(5)) {
    ClientOptions options;
    options.targets = targets.empty()
                          ? std::vector<std::string>{server_->Target()}
                          : std::move(targets);
    options.default_deadline = deadline;
    options.retry_backoff = {absl::Milliseconds(10), absl::Milliseconds(100),
                             2.0, 0.2};
    absl::StatusOr<Client> client = Client::Connect(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  static JobOptions Job(std::string key = "") {
    JobOptions job;
    job.queue = "emails";
    job.payload = "hello";
    job.idempotency_key = std::move(key);
    return job;
  }

  std::shared_ptr<FakeJobService> service_;
  std::unique_ptr<FakeServer> server_;
};

TEST_F(ClientTest, EnqueueSendsEveryOption) {
  Client client = Connect();
  JobOptions job;
  job.queue = "thumbnail";
  job.payload = "img.png";
  job.priority = -5;
  job.run_at = absl::FromUnixSeconds(4000000000);
  job.max_attempts = 4;
  job.idempotency_key = "key-1";
  job.headers = {{"trace-id", "t1"}, {"tenant", "acme"}};
  absl::StatusOr<EnqueueResult> result = client.Enqueue(job);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->job_id.empty());
  EXPECT_FALSE(result->duplicate);
  ASSERT_EQ(service_->EnqueuedSpecs().size(), 1u);
  const v1::JobSpec spec = service_->EnqueuedSpecs()[0];
  EXPECT_EQ(spec.queue(), "thumbnail");
  EXPECT_EQ(spec.payload(), "img.png");
  EXPECT_EQ(spec.priority(), -5);
  EXPECT_EQ(spec.run_at().seconds(), 4000000000);
  EXPECT_FALSE(spec.has_delay());
  EXPECT_EQ(spec.max_attempts(), 4);
  EXPECT_EQ(spec.idempotency_key(), "key-1");
  EXPECT_EQ(spec.headers().at("tenant"), "acme");
  // A repeat with the same key is reported as a duplicate.
  absl::StatusOr<EnqueueResult> again = client.Enqueue(job);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->job_id, result->job_id);
}

TEST_F(ClientTest, KeyedEnqueueIsRetriedOnUnavailable) {
  Client client = Connect();
  service_->FailNext("Enqueue", 2, grpc::StatusCode::UNAVAILABLE,
                     /*after_apply=*/true);
  absl::StatusOr<EnqueueResult> result = client.Enqueue(Job("k"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(service_->Calls("Enqueue"), 3);
  // The first attempt landed; the retries found it by its key.
  EXPECT_TRUE(result->duplicate);
  EXPECT_EQ(service_->CountInState(v1::JOB_STATE_READY), 1);
}

TEST_F(ClientTest, UnkeyedEnqueueIsNotRetriedOnceSent) {
  Client client = Connect();
  service_->FailNext("Enqueue", 1, grpc::StatusCode::UNAVAILABLE,
                     /*after_apply=*/true);
  absl::StatusOr<EnqueueResult> result = client.Enqueue(Job());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("idempotency key"));
  EXPECT_EQ(service_->Calls("Enqueue"), 1);
  // Exactly one job exists: a blind retry would have made two.
  EXPECT_EQ(service_->CountInState(v1::JOB_STATE_READY), 1);
}

// ABORTED: spoold's database rolled the statement back, so even an unkeyed
// enqueue is safe to send again.
TEST_F(ClientTest, AbortedEnqueueIsRetriedEvenWithoutKey) {
  Client client = Connect();
  service_->FailNext("Enqueue", 1, grpc::StatusCode::ABORTED);
  absl::StatusOr<EnqueueResult> result = client.Enqueue(Job());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(service_->Calls("Enqueue"), 2);
  EXPECT_EQ(service_->CountInState(v1::JOB_STATE_READY), 1);
}

TEST_F(ClientTest, UnkeyedEnqueueWaitsForAServerThatIsNotUpYet) {
  const int port = FreePort();
  ASSERT_GT(port, 0);
  Client client =
      Connect({absl::StrCat("127.0.0.1:", port)}, absl::Seconds(15));
  std::unique_ptr<FakeServer> late;
  std::thread starter([&] {
    absl::SleepFor(absl::Milliseconds(700));
    late = std::make_unique<FakeServer>(service_, port);
  });
  absl::StatusOr<EnqueueResult> result = client.Enqueue(Job());
  starter.join();
  ASSERT_TRUE(late->ok());
  // Not sent while nothing listened, then sent once.
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(service_->Calls("Enqueue"), 1);
}

TEST_F(ClientTest, NoServerFailsAtTheDeadlineSayingNothingWasSent) {
  const int port = FreePort();
  Client client =
      Connect({absl::StrCat("127.0.0.1:", port)}, absl::Milliseconds(500));
  const absl::Time start = absl::Now();
  absl::StatusOr<EnqueueResult> result = client.Enqueue(Job());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("request not sent"));
}

TEST_F(ClientTest, NonRetryableErrorsAreReturnedAtOnce) {
  Client client = Connect();
  service_->FailNext("Enqueue", 1, grpc::StatusCode::INVALID_ARGUMENT);
  absl::StatusOr<EnqueueResult> result = client.Enqueue(Job("k"));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(service_->Calls("Enqueue"), 1);
}

TEST_F(ClientTest, RetriesStopAtMaxAttempts) {
  Client client = Connect();
  service_->FailNext("GetJob", 100, grpc::StatusCode::UNAVAILABLE);
  absl::StatusOr<JobInfo> job = client.GetJob("job-1");
  EXPECT_EQ(job.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(service_->Calls("GetJob"), ClientOptions().max_attempts);
}

TEST_F(ClientTest, GetJobMapsFieldsAndIsRetried) {
  Client client = Connect();
  JobOptions spec = Job();
  spec.headers = {{"h", "v"}};
  absl::StatusOr<EnqueueResult> enqueued = client.Enqueue(spec);
  ASSERT_TRUE(enqueued.ok());
  service_->FailNext("GetJob", 1, grpc::StatusCode::UNAVAILABLE);
  absl::StatusOr<JobInfo> job = client.GetJob(enqueued->job_id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->id, enqueued->job_id);
  EXPECT_EQ(job->queue, "emails");
  EXPECT_EQ(job->state, JobState::kReady);
  EXPECT_EQ(job->payload, "hello");
  EXPECT_EQ(job->headers.at("h"), "v");
  EXPECT_EQ(service_->Calls("GetJob"), 2);

  absl::StatusOr<JobInfo> missing = client.GetJob("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, EnqueueBatchKeepsOrderAndRetriesOnlyWhenAllKeyed) {
  Client client = Connect();
  std::vector<JobOptions> jobs = {Job("a"), Job("b"), Job("c")};
  jobs[1].payload = "second";
  service_->FailNext("EnqueueBatch", 1, grpc::StatusCode::UNAVAILABLE);
  absl::StatusOr<std::vector<EnqueueResult>> results =
      client.EnqueueBatch(jobs);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 3u);
  const auto second = client.GetJob((*results)[1].job_id);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->payload, "second");

  jobs.push_back(Job());  // one job without key: the batch is not retried
  service_->FailNext("EnqueueBatch", 1, grpc::StatusCode::UNAVAILABLE);
  const int before = service_->Calls("EnqueueBatch");
  EXPECT_EQ(client.EnqueueBatch(jobs).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(service_->Calls("EnqueueBatch"), before + 1);
}

TEST_F(ClientTest, BalancesOverSeveralTargetsAndSurvivesOneDown) {
  auto service_b = std::make_shared<FakeJobService>();
  FakeServer server_b(service_b);
  ASSERT_TRUE(server_b.ok());
  Client client = Connect({server_->Target(), server_b.Target()});
  ASSERT_TRUE(client.WaitForConnected(absl::Seconds(5)));
  // round_robin spreads calls over both replicas once both are connected.
  int sent = 0;
  while (sent < 400 &&
         (service_->Calls("Enqueue") < 5 || service_b->Calls("Enqueue") < 5)) {
    ASSERT_TRUE(client.Enqueue(Job(absl::StrCat("k", sent++))).ok());
  }
  EXPECT_GE(service_->Calls("Enqueue"), 5);
  EXPECT_GE(service_b->Calls("Enqueue"), 5);
  EXPECT_EQ(service_->Calls("Enqueue") + service_b->Calls("Enqueue"), sent);

  server_->Shutdown();
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<EnqueueResult> r = client.Enqueue(Job(absl::StrCat("x", i)));
    EXPECT_TRUE(r.ok()) << r.status();
  }
}

// A replica whose host vanished leaves its TCP connection open and silent.
// Keepalive finds that, so calls move to the other address instead of
// waiting out their deadlines on the dead one.
TEST_F(ClientTest, KeepaliveMovesCallsOffAConnectionThatWentSilent) {
  TcpProxy proxy(server_->port());
  ASSERT_TRUE(proxy.ok());
  ClientOptions options;
  options.targets = {proxy.Target(), server_->Target()};
  options.default_deadline = absl::Seconds(4);
  options.retry_backoff = {absl::Milliseconds(10), absl::Milliseconds(100), 2.0,
                           0.2};
  options.keepalive_time = absl::Milliseconds(300);
  options.keepalive_timeout = absl::Milliseconds(300);
  absl::StatusOr<Client> client = Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(client->WaitForConnected(absl::Seconds(5)));
  absl::StatusOr<EnqueueResult> enqueued = client->Enqueue(Job("k"));
  ASSERT_TRUE(enqueued.ok()) << enqueued.status();
  // Both paths carry calls once both connections are up (the one through
  // the proxy may come up later on a loaded machine).
  bool through_proxy = false;
  for (absl::Time until = absl::Now() + absl::Seconds(10);
       !through_proxy && absl::Now() < until;) {
    const int64_t before = proxy.forwarded();
    ASSERT_TRUE(client->GetJob(enqueued->job_id).ok());
    through_proxy = before > 0 && proxy.forwarded() > before;
  }
  ASSERT_TRUE(through_proxy);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(client->GetJob(enqueued->job_id).ok());
  }

  proxy.Freeze();
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<JobInfo> job = client->GetJob(enqueued->job_id);
    EXPECT_TRUE(job.ok()) << "call " << i << ": " << job.status();
  }
}

// A throwaway CA and a server certificate for DNS name spool.test, made with
// the openssl command line in a temp dir.
struct TestCerts {
  std::string ca, server_cert, server_key;
};

absl::StatusOr<TestCerts> MakeTestCerts() {
  char dir_template[] = "/tmp/spool-tls-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string d = dir;
  const std::string script = absl::StrCat(
      "cd ", d,
      " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
      " -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=spool-test-ca"
      " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
      " -nodes -keyout server.key -out server.csr -subj /CN=spool.test"
      " && printf 'subjectAltName=DNS:spool.test' > ext.cnf"
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key"
      " -CAcreateserial -out server.pem -days 1 -extfile ext.cnf",
      " >", d, "/openssl.log 2>&1");
  const int rc = std::system(script.c_str());
  auto read = [&](const std::string& name) {
    std::ifstream in(d + "/" + name);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  TestCerts certs{read("ca.pem"), read("server.pem"), read("server.key")};
  const std::string log = read("openssl.log");
  std::filesystem::remove_all(d);
  if (rc != 0 || certs.ca.empty() || certs.server_cert.empty()) {
    return absl::InternalError(absl::StrCat("openssl failed: ", log));
  }
  return certs;
}

// TLS: the client trusts the given CA and checks the server's name, which
// `authority` sets when the target is an address.
TEST_F(ClientTest, TlsVerifiesTheServerNameThatAuthoritySets) {
  absl::StatusOr<TestCerts> certs = MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.status();
  grpc::SslServerCredentialsOptions server_options;
  server_options.pem_key_cert_pairs.push_back(
      {certs->server_key, certs->server_cert});
  auto service = std::make_shared<FakeJobService>();
  FakeServer server(service, 0, grpc::SslServerCredentials(server_options));
  ASSERT_TRUE(server.ok());

  auto connect = [&](std::shared_ptr<grpc::ChannelCredentials> credentials,
                     std::string authority,
                     absl::Duration deadline = absl::Milliseconds(700)) {
    ClientOptions options;
    options.targets = {server.Target()};
    options.credentials = std::move(credentials);
    options.authority = std::move(authority);
    options.default_deadline = deadline;
    absl::StatusOr<Client> client = Client::Connect(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  };
  grpc::SslCredentialsOptions trust;
  trust.pem_root_certs = certs->ca;
  Client good =
      connect(grpc::SslCredentials(trust), "spool.test", absl::Seconds(5));
  absl::StatusOr<EnqueueResult> r = good.Enqueue(Job());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(service->Calls("Enqueue"), 1);

  // The certificate is not for 127.0.0.1 (no authority), the server is not
  // signed by the default roots, and plaintext does not speak TLS: none of
  // these ever reaches the service.
  Client wrong_name = connect(grpc::SslCredentials(trust), "");
  EXPECT_FALSE(wrong_name.Enqueue(Job()).ok());
  grpc::SslCredentialsOptions no_trust;
  Client untrusted = connect(grpc::SslCredentials(no_trust), "spool.test");
  EXPECT_FALSE(untrusted.Enqueue(Job()).ok());
  Client plaintext = connect(nullptr, "");
  EXPECT_FALSE(plaintext.Enqueue(Job()).ok());
  EXPECT_EQ(service->Calls("Enqueue"), 1);
}

TEST_F(ClientTest, SeparateNamedTargetsGetChannelsOfTheirOwn) {
  auto service_b = std::make_shared<FakeJobService>();
  FakeServer server_b(service_b);
  ASSERT_TRUE(server_b.ok());
  // "localhost" is a name, not an IP literal: one channel per entry.
  Client client = Connect({absl::StrCat("localhost:", server_->port()),
                           absl::StrCat("localhost:", server_b.port())});
  int sent = 0;
  while (sent < 400 && (service_->Calls("Enqueue") == 0 ||
                        service_b->Calls("Enqueue") == 0)) {
    ASSERT_TRUE(client.Enqueue(Job(absl::StrCat("k", sent++))).ok());
  }
  EXPECT_GT(service_->Calls("Enqueue"), 0);
  EXPECT_GT(service_b->Calls("Enqueue"), 0);
}

TEST_F(ClientTest, MetadataIsSentWithEveryCall) {
  // The fake does not check metadata; this guards that setting it does not
  // break calls (metadata keys must be lowercase in gRPC).
  ClientOptions options;
  options.targets = {server_->Target()};
  options.metadata = {{"authorization", "Bearer token"}};
  absl::StatusOr<Client> client = Client::Connect(std::move(options));
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE(client->Enqueue(Job()).ok());
}

TEST(ClientOptionsTest, InvalidOptionsAreRejected) {
  EXPECT_EQ(Client::Connect(ClientOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
  ClientOptions options;
  options.targets = {"127.0.0.1:1"};
  options.max_attempts = 0;
  EXPECT_EQ(Client::Connect(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.max_attempts = 1;
  options.default_deadline = absl::ZeroDuration();
  EXPECT_EQ(Client::Connect(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.default_deadline = absl::Seconds(1);
  options.keepalive_time = absl::Seconds(-1);
  EXPECT_EQ(Client::Connect(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.keepalive_time = absl::Seconds(30);
  options.keepalive_timeout = absl::ZeroDuration();
  EXPECT_EQ(Client::Connect(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.keepalive_time = absl::ZeroDuration();  // Off: no timeout needed.
  EXPECT_TRUE(Client::Connect(options).ok());
}

}  // namespace
}  // namespace spool::testing
