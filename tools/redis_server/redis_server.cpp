#include "redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace tollgate::testing {
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    throw std::runtime_error("no free port");
  }
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

namespace {

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string run_capture(const std::vector<std::string>& argv, int timeout_s) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) throw std::runtime_error("pipe");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 2);
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    auto args = c_argv(argv);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  ::fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  for (;;) {
    ssize_t n = ::read(pipefd[0], buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

RedisServer::RedisServer(Options options) : options_(std::move(options)), port_(free_port()) {
  char tmpl[] = "/tmp/tollgate-redis-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
  dir_ = tmpl;
  if (options_.tls) make_certificates();
  start();
}

void RedisServer::make_certificates() {
  const std::string d = dir_ + "/";
  {
    std::ofstream san(d + "san.cnf");
    san << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  }
  run_capture({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "ca.key",
               "-out", d + "ca.crt", "-days", "1", "-subj", "/CN=Tollgate Test CA"});
  run_capture({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "server.key",
               "-out", d + "server.csr", "-subj", "/CN=127.0.0.1"});
  run_capture({"openssl", "x509", "-req", "-in", d + "server.csr", "-CA", d + "ca.crt", "-CAkey",
               d + "ca.key", "-CAcreateserial", "-out", d + "server.crt", "-days", "1", "-extfile",
               d + "san.cnf"});
  if (!std::filesystem::exists(d + "server.crt")) {
    throw std::runtime_error("openssl could not make the test certificates");
  }
}

RedisServer::~RedisServer() {
  stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string RedisServer::url(const std::string& userinfo) const {
  return std::string(options_.tls ? "rediss://" : "redis://") +
         (userinfo.empty() ? "" : userinfo + "@") + "127.0.0.1:" + std::to_string(port_);
}

void RedisServer::start() {
  const std::string port = std::to_string(port_);
  std::vector<std::string> argv = {"redis-server", "--port", options_.tls ? "0" : port, "--bind",
                                   "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir_,
                                   "--logfile", dir_ + "/redis.log",
                                   // tests use DEBUG SLEEP to make a slow server
                                   "--enable-debug-command", "local"};
  if (options_.tls) {
    const std::vector<std::string> tls = {"--tls-port",         port,
                                          "--tls-cert-file",    dir_ + "/server.crt",
                                          "--tls-key-file",     dir_ + "/server.key",
                                          "--tls-ca-cert-file", ca_file(),
                                          "--tls-auth-clients", "no"};
    argv.insert(argv.end(), tls.begin(), tls.end());
  }
  if (!options_.password.empty()) {
    argv.push_back("--requirepass");
    argv.push_back(options_.password);
  }
  argv.insert(argv.end(), options_.args.begin(), options_.args.end());
  for (const auto& u : options_.users) {
    argv.push_back("--user");
    // redis-server takes the ACL rule's words as separate arguments after --user
    std::istringstream words(u);
    for (std::string w; words >> w;) argv.push_back(w);
  }
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    auto args = c_argv(argv);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  // Ready when it answers PING (bounded: 10 s).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cli({"PING"}) == "PONG") return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited at start (port " + std::to_string(port_) + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop();
  throw std::runtime_error("redis-server did not answer PING within 10 s");
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);  // in case a test stopped it
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

std::string RedisServer::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port_)};
  if (options_.tls) {
    argv.push_back("--tls");
    argv.push_back("--cacert");
    argv.push_back(ca_file());
  }
  if (!options_.password.empty()) {
    argv.push_back("--no-auth-warning");
    argv.push_back("-a");
    argv.push_back(options_.password);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return run_capture(argv);
}

std::vector<std::pair<std::string, long long>> RedisServer::keys_with_ttl() const {
  std::vector<std::pair<std::string, long long>> out;
  std::istringstream keys(cli({"--scan"}));
  for (std::string k; std::getline(keys, k);) {
    if (k.empty()) continue;
    out.emplace_back(k, std::stoll(cli({"PTTL", k})));
  }
  return out;
}

}  // namespace tollgate::testing
