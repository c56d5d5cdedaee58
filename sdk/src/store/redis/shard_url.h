// Shard addresses: redis://[user:pass@]host:port[/db] and rediss://… (TLS). Pure parsing:
// it lives in core because Config::validate checks the URLs; the Redis store uses it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tollgate::core {

struct ShardUrl {
  bool tls = false;
  std::string host;
  std::uint16_t port = 6379;
  std::string user;      // empty: AUTH with the password alone (the "default" user)
  std::string password;  // empty: no AUTH
  int db = 0;

  // Throws std::invalid_argument saying what is wrong (never echoing the password).
  static ShardUrl parse(std::string_view url);
  // The URL with the password replaced by "***": the only form that may be logged.
  std::string redacted() const;
};

}  // namespace tollgate::core
