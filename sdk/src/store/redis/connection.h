// One pipelined connection to one Redis server, on an io_context the caller runs (one
// thread). Batches of commands are written back to back and their replies matched in
// order. It connects on first use, authenticates (password, or ACL user and password),
// selects the database, and reconnects on the next send after a failure — not before a
// short back-off, so a dead server is not hammered. Connect and command timeouts fail
// every batch in flight and close the socket (their replies could no longer be matched).
#pragma once

#include "tollgate/observer.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "resilience/backoff.h"
#include "store/redis/resp.h"
#include "store/redis/shard_url.h"

namespace tollgate::redis {

namespace asio = boost::asio;
using Endpoint = core::ShardUrl;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Options {
    Endpoint endpoint;
    std::chrono::milliseconds connect_timeout{1000};
    std::chrono::milliseconds command_timeout{1000};
    // Reconnects back off exponentially with full jitter: random(0, min(cap, base * 2^n)).
    std::chrono::milliseconds reconnect_backoff{100};
    std::chrono::milliseconds reconnect_backoff_cap{2000};
    std::vector<Command> on_connect;  // sent after AUTH/SELECT on every (re)connect
    // rediss://: trust these CAs (PEM file); empty: the system's. The server's name is
    // always verified against its certificate.
    std::string tls_ca_file;
    // Called on the io thread when the shard goes down (first failure after being up)
    // and when it is up again. Messages name the redacted URL, never a password.
    std::function<void(LogLevel, const std::string&)> log;
  };
  // `error` is empty on success; then replies.size() equals the commands sent. Replies may
  // be Redis errors (Reply::is_error): that is the caller's business.
  // An error starting with kRefused means the batch was never written (the connection was
  // down): it did not run.
  static constexpr std::string_view kRefused = "unavailable";
  static bool refused(const std::string& error) noexcept { return error.rfind(kRefused, 0) == 0; }
  using Done = std::function<void(std::vector<Reply> replies, std::string error)>;

  static std::shared_ptr<Connection> create(asio::io_context& io, Options options);
  ~Connection();

  // Thread-safe: hands the batch to the io_context's thread.
  void send(std::vector<Command> commands, Done done);
  // Thread-safe: fails what is pending ("closed") and closes the socket.
  void close();

  const Endpoint& endpoint() const noexcept { return options_.endpoint; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Batch {
    std::vector<Command> commands;
    Done done;
    std::vector<Reply> replies;
    Clock::time_point deadline{};
    bool handshake = false;
  };
  enum class State { kIdle, kConnecting, kReady };

  Connection(asio::io_context& io, Options options);
  void submit(Batch batch);
  void connect();
  // Tries the resolved addresses in turn from `next`, each on a socket opened close-on-exec.
  void connect_to(asio::ip::tcp::resolver::results_type results, std::size_t next, unsigned gen,
                  boost::system::error_code last);
  void on_transport(unsigned gen);  // TCP up: the TLS handshake, if any, then on_connected
  void on_connected();
  void flush();
  void read();
  void on_reply(Reply reply);
  void fail_all(const std::string& why);
  void arm_timer();
  void reset_transport();
  // Calls f(stream) with the plain socket or the TLS stream over it.
  template <typename F>
  void with_stream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }
  asio::ip::tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }

  asio::io_context& io_;
  Options options_;
  asio::ip::tcp::resolver resolver_;
  std::unique_ptr<asio::ssl::context> tls_context_;  // rediss:// only
  std::unique_ptr<asio::ip::tcp::socket> plain_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> tls_;
  asio::steady_timer timer_;
  asio::steady_timer reconnect_timer_;  // background reconnects while down
  State state_ = State::kIdle;
  Clock::time_point connect_deadline_{};
  Clock::time_point retry_after_{};
  resilience::Backoff backoff_;
  std::string last_error_;
  unsigned failures_in_row_ = 0;  // since the last answer
  bool down_ = false;             // failed since the last answer (for log lines on changes only)
  std::deque<Batch> waiting_;     // not written yet
  std::deque<Batch> in_flight_;   // written; replies awaited in this order
  std::string out_;
  bool writing_ = false;
  std::unique_ptr<ReplyParser> parser_ = std::make_unique<ReplyParser>();
  std::vector<char> in_;
  unsigned generation_ = 0;  // bumps on every close: late callbacks of old sockets are ignored
};

}  // namespace tollgate::redis
