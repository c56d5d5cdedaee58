#include "core/json_reader.h"

#include <unordered_set>
#include <utility>
#include <vector>

namespace tollgate::core::json {

void fail(std::string field, std::string reason) {
  throw ConfigError(std::move(field), std::move(reason));
}

std::string in_quotes(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out += '"';
  return out;
}

std::string join(std::string_view parent, std::string_view child) {
  if (parent.empty()) return std::string(child);
  std::string out(parent);
  out += '.';
  out.append(child);
  return out;
}

std::string indexed(std::string_view parent, std::size_t i) {
  return std::string(parent) + "[" + std::to_string(i) + "]";
}

namespace {

constexpr std::size_t kMaxJsonDepth = 32;

// Syntax pass. nlohmann keeps the last of duplicate keys silently; here a duplicate key
// is an error (`{"rate": 1, "rate": 1000}` is a typo, not a choice). It also bounds
// nesting and reports malformed input with the parser's message and byte offset.

class SyntaxCheck final : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }

  bool start_object(std::size_t) override { return open(false); }
  bool key(string_t& k) override {
    Frame& f = frames_.back();
    if (!f.keys.insert(k).second) {
      error_ = {join(path(frames_.size() - 1), k), "duplicate key"};
      return false;
    }
    f.key = k;
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(true); }
  bool end_array() override { return close(); }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::json::exception& ex) override {
    std::string message = ex.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep the rest.
    if (!message.empty() && message.front() == '[') {
      if (auto end = message.find("] "); end != std::string::npos) message.erase(0, end + 2);
    }
    error_ = {"$", "invalid JSON at byte " + std::to_string(position) + ": " + message};
    return false;
  }

  // Throws the first error found, if any.
  void check(std::string_view text) {
    const bool ok = Json::sax_parse(text, this);
    if (!ok || !error_.first.empty()) {
      if (error_.first.empty()) error_ = {"$", "invalid JSON"};
      fail(error_.first, error_.second);
    }
  }

 private:
  struct Frame {
    bool array = false;
    std::size_t next_index = 0;  // arrays: index of the next element
    std::string key;             // objects: the key being read
    std::unordered_set<std::string> keys;
  };

  // Marks the start of a value inside the innermost array.
  void element() {
    if (!frames_.empty() && frames_.back().array)
      frames_.back().key = std::to_string(frames_.back().next_index++);
  }
  bool value() {
    element();
    return true;
  }
  bool open(bool array) {
    element();
    if (frames_.size() >= kMaxJsonDepth) {
      error_ = {or_root(path(frames_.size())),
                "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
      return false;
    }
    frames_.push_back(Frame{array, 0, {}, {}});
    return true;
  }
  bool close() {
    frames_.pop_back();
    return true;
  }
  // Path through the first n open containers, in the form of the error messages; the
  // innermost open container is path(frames_.size() - 1), a child it is reading path(size).
  std::string path(std::size_t n) const {
    std::string out;
    for (std::size_t i = 0; i < n && i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      out = f.array ? out + "[" + f.key + "]" : join(out, f.key);
    }
    return out;
  }
  static std::string or_root(std::string p) { return p.empty() || p[0] == '[' ? "$" + p : p; }

  std::vector<Frame> frames_;
  std::pair<std::string, std::string> error_;
};

}  // namespace

Json read_strict(std::string_view text) {
  SyntaxCheck syntax;
  syntax.check(text);
  return Json::parse(text);
}

}  // namespace tollgate::core::json
