// RESP, sans I/O: commands are encoded here, and replies are parsed by hiredis's reader
// (fed whatever bytes arrived; it hands back whole replies). No sockets in this file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::redis {

struct Reply {
  enum class Type : std::uint8_t { kString, kStatus, kError, kInteger, kNil, kArray, kOther };
  Type type = Type::kNil;
  std::string str;  // string, status, error (and the textual form of doubles, big numbers)
  long long integer = 0;
  std::vector<Reply> elements;

  bool is_error() const noexcept { return type == Type::kError; }
  // For an error: does it start with this code (e.g. "NOSCRIPT")?
  bool error_code_is(std::string_view code) const noexcept {
    return is_error() && str.starts_with(code) &&
           (str.size() == code.size() || str[code.size()] == ' ');
  }
};

// A command as its arguments; encoded as a RESP array of bulk strings.
using Command = std::vector<std::string>;
void encode(const Command& cmd, std::string& out);

// Whole replies out of arbitrary bytes. An array header asks hiredis to allocate its
// element pointers before a single element has arrived ("*2147483647" would ask for
// 16 GiB, and hiredis 0.14 has no maxelements): the parser refuses, as a protocol error,
// a reply whose arrays announce more than kMaxReplyElements elements in all, before
// hiredis allocates them. After a protocol error the parser is spent: make a new one.
class ReplyParser {
 public:
  // Far above any reply Tollgate asks for (a lease batch: 6 per key, a few hundred keys).
  static constexpr long long kMaxReplyElements = 1 << 20;

  ReplyParser();
  ~ReplyParser();
  ReplyParser(const ReplyParser&) = delete;
  ReplyParser& operator=(const ReplyParser&) = delete;

  void feed(const char* data, std::size_t len);
  // Next whole reply, if one has arrived. Throws std::runtime_error on a protocol error.
  bool next(Reply& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tollgate::redis
