#include "store/redis/shard_url.h"

#include <charconv>
#include <stdexcept>

namespace tollgate::core {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Userinfo may be percent-encoded (a password holding '@' or ':').
std::string percent_decode(std::string_view s, const char* what) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    const int hi = i + 1 < s.size() ? hex_value(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      throw std::invalid_argument(std::string("bad percent-encoding in the ") + what);
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

}  // namespace

ShardUrl ShardUrl::parse(std::string_view url) {
  ShardUrl e;
  std::string_view rest;
  if (url.starts_with("redis://")) {
    rest = url.substr(8);
  } else if (url.starts_with("rediss://")) {
    e.tls = true;
    rest = url.substr(9);
  } else {
    throw std::invalid_argument("must start with redis:// or rediss://");
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      e.user = percent_decode(userinfo.substr(0, colon), "user");
      e.password = percent_decode(userinfo.substr(colon + 1), "password");
    } else {
      e.password = percent_decode(userinfo, "password");  // redis://secret@host
    }
  }
  std::string_view hostport = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), e.db);
      if (ec != std::errc() || p != db.data() + db.size() || e.db < 0) {
        throw std::invalid_argument("database must be a number >= 0");
      }
    }
  }
  std::string_view host = hostport;
  if (hostport.starts_with('[')) {  // [::1]:6379
    auto close = hostport.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument("unclosed '[' in host");
    host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport[0] != ':') throw std::invalid_argument("bad host");
    hostport = hostport.empty() ? hostport : hostport.substr(1);
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    hostport = hostport.substr(colon + 1);
  } else {
    hostport = {};
  }
  if (host.empty()) throw std::invalid_argument("host is empty");
  e.host = std::string(host);
  if (!hostport.empty()) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(hostport.data(), hostport.data() + hostport.size(), port);
    if (ec != std::errc() || p != hostport.data() + hostport.size() || port == 0 || port > 65535) {
      throw std::invalid_argument("port must be 1..65535");
    }
    e.port = static_cast<std::uint16_t>(port);
  }
  return e;
}

std::string ShardUrl::redacted() const {
  std::string s = tls ? "rediss://" : "redis://";
  if (!user.empty() || !password.empty()) {
    s += user;
    if (!password.empty()) s += user.empty() ? "***" : ":***";
    s += '@';
  }
  s += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  s += ':' + std::to_string(port);
  if (db != 0) s += '/' + std::to_string(db);
  return s;
}

}  // namespace tollgate::core
