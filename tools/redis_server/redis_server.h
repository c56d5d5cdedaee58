// A real redis-server for a test or the simulator: started on a free loopback port with no
// persistence, stopped (and its files removed) when the object goes — also when the test fails, and
// by the kernel (PR_SET_PDEATHSIG) if the test process dies.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace tollgate::testing {

class RedisServer {
 public:
  struct Options {
    std::string password;            // requirepass (the default user's password)
    std::vector<std::string> users;  // ACL rules, e.g. "alice on >secret ~* &* +@all"
    bool tls = false;  // TLS only, with a CA and a certificate for 127.0.0.1 made here
    // More redis-server arguments, e.g. {"--cluster-enabled", "yes"}.
    std::vector<std::string> args{};
  };
  RedisServer() : RedisServer(Options{}) {}
  explicit RedisServer(Options options);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const noexcept { return port_; }
  bool running() const noexcept { return pid_ > 0; }
  // The server's own directory (its log, a cluster's nodes.conf).
  const std::string& dir() const noexcept { return dir_; }
  // The CA that signed the server's certificate (TLS servers).
  std::string ca_file() const { return dir_ + "/ca.crt"; }
  // redis://[userinfo@]127.0.0.1:port (rediss:// for a TLS server)
  std::string url(const std::string& userinfo = "") const;
  // Runs redis-cli against the server (as the default user) and returns its output,
  // trailing newline removed.
  std::string cli(const std::vector<std::string>& args) const;
  // Every key and its PTTL (ms; -1 = no TTL).
  std::vector<std::pair<std::string, long long>> keys_with_ttl() const;

  void stop();    // SIGTERM, then SIGKILL after 5 s
  void kill();    // SIGKILL: gone at once, no goodbye to its clients
  void pause();   // SIGSTOP: a hung server (accepts connections, answers nothing)
  void resume();  // SIGCONT
  // Again, on the same port, with empty data. The server is killed when the calling
  // thread ends (PR_SET_PDEATHSIG follows the thread), so call it from one that stays.
  void start();

 private:
  void make_certificates();
  Options options_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::string dir_;
};

// A loopback TCP port nothing listens on now.
int free_port();

// Runs a program and returns its standard output (stderr to /dev/null). Bounded: killed
// after timeout_s seconds.
std::string run_capture(const std::vector<std::string>& argv, int timeout_s = 10);

}  // namespace tollgate::testing
