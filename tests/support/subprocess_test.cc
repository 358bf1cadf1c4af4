// Tests the port handling of the child-process helpers.
#include "tests/support/subprocess.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "gtest/gtest.h"

namespace spool::testing {
namespace {

// Binds a new socket to 127.0.0.1:`port` (with SO_REUSEADDR when `reuse`)
// and listens on it when `listen`, as a server would: 0 or the errno.
int TryBind(int port, bool reuse, bool listen) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const int on = 1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int err = 0;
  if ((reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on))) ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      (listen && ::listen(fd, 1) != 0)) {
    err = errno;
  }
  close(fd);
  return err;
}

TEST(PortReservationTest, RefusesPlainBindersButLetsAServerListen) {
  absl::StatusOr<PortReservation> reserved = PortReservation::Reserve();
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  const int port = reserved->port();
  ASSERT_GT(port, 0);
  // Anyone binding without SO_REUSEADDR is kept off the port...
  EXPECT_EQ(TryBind(port, /*reuse=*/false, /*listen=*/false), EADDRINUSE);
  // ...while a server binding as PostgreSQL and gRPC do gets it, again and
  // again (a restart).
  EXPECT_EQ(TryBind(port, /*reuse=*/true, /*listen=*/true), 0);
  EXPECT_EQ(TryBind(port, /*reuse=*/true, /*listen=*/true), 0);

  PortReservation moved = *std::move(reserved);
  EXPECT_EQ(moved.port(), port);
  EXPECT_EQ(TryBind(port, /*reuse=*/false, /*listen=*/false), EADDRINUSE)
      << "moving keeps the reservation";
  moved = PortReservation();
  EXPECT_EQ(moved.port(), 0);
  EXPECT_EQ(TryBind(port, /*reuse=*/false, /*listen=*/false), 0) << "released";
}

}  // namespace
}  // namespace spool::testing
