#include "store/redis/keys.h"

namespace tollgate::redis {

std::string escape(std::string_view part) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(part.size());
  for (char ch : part) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '{' || c == '}' || c == ':' || c == '%' || c < 0x21 || c > 0x7e) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

namespace {
// A group's hash tag. Redis hashes the whole key when "{}" is empty, so an empty group is
// tagged "%", which no escaped string can be (escape() follows every '%' by two digits).
std::string tag(std::string_view group) {
  return group.empty() ? std::string("%") : escape(group);
}
}  // namespace

std::string bucket_key(std::string_view group, std::string_view policy, std::string_view key) {
  return "tg:{" + tag(group) + "}:b:" + escape(policy) + ":" + escape(key);
}

std::string group_key(std::string_view group) {
  return "tg:{" + tag(group) + "}:g";
}

std::string tenant_field(std::string_view policy, std::string_view key) {
  return escape(policy) + ":" + escape(key);
}

std::string request_key(std::string_view group, std::string_view request_id) {
  return "tg:{" + tag(group) + "}:r:" + escape(request_id);
}

std::uint64_t stable_hash(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

std::int32_t jump_hash(std::uint64_t key, std::int32_t buckets) noexcept {
  std::int64_t b = -1, j = 0;
  while (j < buckets) {
    b = j;
    key = key * 2862933555777941757ULL + 1;
    j = static_cast<std::int64_t>(
        static_cast<double>(b + 1) *
        (static_cast<double>(1LL << 31) / static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<std::int32_t>(b);
}

}  // namespace tollgate::redis
