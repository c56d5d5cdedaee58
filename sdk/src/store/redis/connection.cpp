#include "store/redis/connection.h"

#include <fcntl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <iterator>

namespace tollgate::redis {

std::shared_ptr<Connection> Connection::create(asio::io_context& io, Options options) {
  return std::shared_ptr<Connection>(new Connection(io, std::move(options)));
}

Connection::Connection(asio::io_context& io, Options options)
    : io_(io),
      options_(std::move(options)),
      resolver_(io),
      timer_(io),
      reconnect_timer_(io),
      backoff_({options_.reconnect_backoff, options_.reconnect_backoff_cap, 0,
                resilience::Jitter::kFull}),
      in_(16 * 1024) {
  if (options_.endpoint.tls) {
    tls_context_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    tls_context_->set_options(asio::ssl::context::default_workarounds |
                              asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                              asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    if (options_.tls_ca_file.empty()) {
      tls_context_->set_default_verify_paths();
    } else {
      tls_context_->load_verify_file(options_.tls_ca_file);  // throws: a bad path is config
    }
    tls_context_->set_verify_mode(asio::ssl::verify_peer);
  }
  reset_transport();
}

void Connection::reset_transport() {
  if (tls_context_) {
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(io_, *tls_context_);
    tls_->set_verify_callback(asio::ssl::host_name_verification(options_.endpoint.host));
    SSL_set_tlsext_host_name(tls_->native_handle(), options_.endpoint.host.c_str());
  } else {
    plain_ = std::make_unique<asio::ip::tcp::socket>(io_);
  }
}

Connection::~Connection() = default;

void Connection::send(std::vector<Command> commands, Done done) {
  Batch b;
  b.commands = std::move(commands);
  b.done = std::move(done);
  asio::post(
      io_, [self = shared_from_this(), b = std::move(b)]() mutable { self->submit(std::move(b)); });
}

void Connection::close() {
  asio::post(io_, [self = shared_from_this()] { self->fail_all("connection closed"); });
}

void Connection::submit(Batch batch) {
  if (batch.commands.empty()) {
    batch.done({}, {});
    return;
  }
  // Down: fail at once while backing off, and, after two failures in a row, while a
  // reconnect is being tried (starting one in the background when none is), so that
  // callers and breakers learn of an outage at their own pace instead of one connect
  // timeout at a time. (After one failure — a dropped connection — batches wait for the
  // reconnect.)
  const bool backing_off = state_ == State::kIdle && Clock::now() < retry_after_;
  if (backing_off || (failures_in_row_ >= 2 && state_ != State::kReady)) {
    if (!backing_off && state_ == State::kIdle) connect();
    batch.done({}, std::string(kRefused) + " (reconnecting after: " + last_error_ + ")");
    return;
  }
  waiting_.push_back(std::move(batch));
  if (state_ == State::kIdle) {
    connect();
  } else if (state_ == State::kReady) {
    flush();
  }
}

void Connection::connect() {
  // A TLS stream cannot be used again after a close; a fresh transport per connection.
  // (The old one's aborted handlers have long run: connect() follows a back-off.)
  if (generation_ > 0) reset_transport();
  state_ = State::kConnecting;
  connect_deadline_ = Clock::now() + options_.connect_timeout;
  arm_timer();
  const unsigned gen = generation_;
  auto self = shared_from_this();
  resolver_.async_resolve(
      options_.endpoint.host, std::to_string(options_.endpoint.port),
      [self, gen](const boost::system::error_code& ec,
                  const asio::ip::tcp::resolver::results_type& results) {
        if (gen != self->generation_) return;
        if (ec) return self->fail_all("cannot resolve " + self->options_.endpoint.host);
        self->connect_to(results, 0, gen, asio::error::host_not_found);
      });
}

// Not asio::async_connect: it opens each socket itself, without close-on-exec, and a child
// process the application starts would inherit the Redis connections and keep them open
// (the server keeps counting them) long after the SDK closed its side.
void Connection::connect_to(asio::ip::tcp::resolver::results_type results, std::size_t next,
                            unsigned gen, boost::system::error_code last) {
  if (next >= results.size()) return fail_all("cannot connect: " + last.message());
  auto it = results.begin();
  std::advance(it, static_cast<std::ptrdiff_t>(next));
  const asio::ip::tcp::endpoint endpoint = it->endpoint();
  asio::ip::tcp::socket& s = socket();
  boost::system::error_code ec;
  s.close(ec);
  s.open(endpoint.protocol(), ec);
  if (!ec && ::fcntl(s.native_handle(), F_SETFD, FD_CLOEXEC) != 0) {
    ec = boost::system::error_code(errno, boost::system::system_category());
  }
  if (ec) return connect_to(std::move(results), next + 1, gen, ec);
  s.async_connect(endpoint, [self = shared_from_this(), results, next,
                             gen](const boost::system::error_code& ec2) mutable {
    if (gen != self->generation_) return;
    if (!ec2) return self->on_transport(gen);
    // Closed under it (the connect timeout): no further address.
    if (ec2 == asio::error::operation_aborted || !self->socket().is_open()) {
      return self->fail_all("cannot connect: " + ec2.message());
    }
    self->connect_to(std::move(results), next + 1, gen, ec2);
  });
}

void Connection::on_transport(unsigned gen) {
  if (!tls_) return on_connected();
  tls_->async_handshake(asio::ssl::stream_base::client,
                        [self = shared_from_this(), gen](const boost::system::error_code& ec) {
                          if (gen != self->generation_) return;
                          if (ec) return self->fail_all("TLS handshake failed: " + ec.message());
                          self->on_connected();
                        });
}

void Connection::on_connected() {
  boost::system::error_code ignored;
  socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  // AUTH and SELECT go first, in the same pipeline as whatever is waiting.
  Batch hello;
  hello.handshake = true;
  const Endpoint& ep = options_.endpoint;
  if (!ep.password.empty()) {
    if (ep.user.empty()) {
      hello.commands.push_back({"AUTH", ep.password});
    } else {
      hello.commands.push_back({"AUTH", ep.user, ep.password});
    }
  }
  if (ep.db != 0) hello.commands.push_back({"SELECT", std::to_string(ep.db)});
  for (const Command& c : options_.on_connect) hello.commands.push_back(c);
  if (!hello.commands.empty()) waiting_.push_front(std::move(hello));
  state_ = State::kReady;
  read();
  flush();
}

void Connection::flush() {
  if (writing_ || waiting_.empty() || state_ != State::kReady) return;
  out_.clear();
  const auto deadline = Clock::now() + options_.command_timeout;
  while (!waiting_.empty()) {
    Batch b = std::move(waiting_.front());
    waiting_.pop_front();
    for (const Command& c : b.commands) encode(c, out_);
    b.deadline = deadline;
    in_flight_.push_back(std::move(b));
  }
  arm_timer();
  writing_ = true;
  const unsigned gen = generation_;
  auto self = shared_from_this();
  with_stream([&](auto& stream) {
    asio::async_write(stream, asio::buffer(out_),
                      [self, gen](const boost::system::error_code& ec, std::size_t) {
                        if (gen != self->generation_) return;
                        self->writing_ = false;
                        if (ec) return self->fail_all("write failed: " + ec.message());
                        self->flush();
                      });
  });
}

void Connection::read() {
  const unsigned gen = generation_;
  auto self = shared_from_this();
  with_stream([&](auto& stream) {
    stream.async_read_some(
        asio::buffer(in_), [self, gen](const boost::system::error_code& ec, std::size_t n) {
          if (gen != self->generation_) return;
          if (ec) {
            return self->fail_all(ec == asio::error::eof ? "server closed the connection"
                                                         : "read failed: " + ec.message());
          }
          try {
            self->parser_->feed(self->in_.data(), n);
            Reply r;
            while (gen == self->generation_ && self->parser_->next(r)) self->on_reply(std::move(r));
          } catch (const std::exception& ex) {
            return self->fail_all(ex.what());
          }
          if (gen == self->generation_) self->read();
        });
  });
}

void Connection::on_reply(Reply reply) {
  if (in_flight_.empty()) return fail_all("reply without a request");
  Batch& b = in_flight_.front();
  if (b.handshake && reply.is_error()) {
    // Never echo credentials: the server's error text does not contain them.
    return fail_all("handshake failed: " + reply.str);
  }
  b.replies.push_back(std::move(reply));
  if (b.replies.size() < b.commands.size()) return;
  Batch done = std::move(b);
  in_flight_.pop_front();
  backoff_.reset();  // the server answers: healthy
  failures_in_row_ = 0;
  if (down_) {
    down_ = false;
    if (options_.log) options_.log(LogLevel::kInfo, options_.endpoint.redacted() + ": up again");
  }
  arm_timer();
  if (!done.handshake) done.done(std::move(done.replies), {});
}

void Connection::fail_all(const std::string& why) {
  ++generation_;
  boost::system::error_code ignored;
  resolver_.cancel();
  socket().close(ignored);  // a new transport is made at the next connect()
  timer_.cancel();
  parser_ = std::make_unique<ReplyParser>();
  writing_ = false;
  state_ = State::kIdle;
  last_error_ = why;
  const bool was_up = !down_;
  if (why != "connection closed") ++failures_in_row_;
  if (!down_ && why != "connection closed") {
    down_ = true;
    if (options_.log) options_.log(LogLevel::kWarn, options_.endpoint.redacted() + ": " + why);
  }
  // The first failure after answers (a dropped connection, a server restart) may
  // reconnect at once; failures in a row back off.
  retry_after_ = was_up
                     ? Clock::now()
                     : Clock::now() + std::chrono::duration_cast<Clock::duration>(*backoff_.next());
  reconnect_timer_.cancel();
  if (why != "connection closed" && failures_in_row_ >= 2) {
    // Down (twice in a row: after one failure the next batch reconnects and waits for
    // it): try again in the background after the back-off, so that the connection is up
    // by the time a breaker's probe (or a key) needs it.
    reconnect_timer_.expires_at(retry_after_);
    reconnect_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && self->state_ == State::kIdle && self->down_) self->connect();
    });
  }
  std::deque<Batch> failed;
  failed.swap(in_flight_);
  for (auto& b : waiting_) failed.push_back(std::move(b));
  waiting_.clear();
  for (auto& b : failed) {
    if (!b.handshake) b.done({}, why);
  }
}

void Connection::arm_timer() {
  Clock::time_point due{};
  if (state_ == State::kConnecting) {
    due = connect_deadline_;
  } else if (!in_flight_.empty()) {
    due = in_flight_.front().deadline;
  } else {
    timer_.cancel();
    return;
  }
  timer_.expires_at(due);
  const unsigned gen = generation_;
  auto self = shared_from_this();
  timer_.async_wait([self, gen, due](const boost::system::error_code& ec) {
    if (ec || gen != self->generation_) return;
    if (self->state_ == State::kConnecting && Clock::now() >= self->connect_deadline_) {
      return self->fail_all("connect timed out");
    }
    if (!self->in_flight_.empty() && Clock::now() >= self->in_flight_.front().deadline) {
      return self->fail_all("command timed out");
    }
    (void)due;
  });
}

}  // namespace tollgate::redis
