// Starts tests/http/config_server.py (python3's http.server) on a free loopback port for the
// HTTP config source's tests, and stops it. What it serves is in files of its directory.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace tollgate::testing {

class ConfigServer {
 public:
  ConfigServer() {
    char tmpl[] = "/tmp/tollgate-config-server-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execlp("python3", "python3", TOLLGATE_CONFIG_SERVER, dir_.c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 1000 && !std::filesystem::exists(dir_ + "/port"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::ifstream in(dir_ + "/port");
    if (!(in >> port_)) throw std::runtime_error("config server did not start");
  }
  ~ConfigServer() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }
  ConfigServer(const ConfigServer&) = delete;
  ConfigServer& operator=(const ConfigServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/tollgate.json"; }
  void set_config(const std::string& json) const { write("config.json", json); }
  // "ok", "500", "sleep" (answers after 5 s) or "garbage".
  void set_mode(const std::string& mode) const { write("mode", mode); }
  // The status of every answer so far, one a line.
  std::string answered() const {
    std::ifstream in(dir_ + "/requests");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ + "/" + name + ".tmp") << text;
    std::filesystem::rename(dir_ + "/" + name + ".tmp", dir_ + "/" + name);
  }
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace tollgate::testing
