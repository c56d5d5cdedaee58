// Redis key escaping: for any two byte strings, escaping is reversible (so no two parts
// collide), the escaped form holds none of "{}:", and every key of a group hashes to the
// group's own slot (the hash tag never moves), whatever the policy, key or request id.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "store/redis/keys.h"

namespace {

using namespace tollgate::redis;

// The inverse of escape(), written here independently of it.
bool unescape(std::string_view s, std::string& out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

// Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag, or of the whole key when it
// has no non-empty {…} section.
std::uint16_t crc16(std::string_view s) {
  std::uint16_t crc = 0;
  for (char ch : s) {
    crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(ch) << 8);
    for (int i = 0; i < 8; ++i) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
  }
  return crc;
}
std::uint16_t slot(std::string_view key) {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close != open + 1) {
      return crc16(key.substr(open + 1, close - open - 1)) & 16383;
    }
  }
  return crc16(key) & 16383;
}

void check_part(std::string_view part) {
  const std::string e = escape(part);
  if (e.find_first_of("{}:") != std::string::npos) std::abort();
  std::string back;
  if (!unescape(e, back) || back != part) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Input: group \0 policy \0 key \0 other — missing parts are empty.
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view parts[4];
  for (auto& p : parts) {
    const auto z = in.find('\0');
    p = in.substr(0, z);
    in = z == std::string_view::npos ? std::string_view{} : in.substr(z + 1);
  }
  const auto [group, policy, key, other] = parts;
  for (std::string_view p : parts) check_part(p);
  if ((escape(key) == escape(other)) != (key == other)) std::abort();

  const std::uint16_t home = slot(group_key(group));
  if (slot(bucket_key(group, policy, key)) != home) std::abort();
  if (slot(request_key(group, key)) != home) std::abort();
  // Two different (group, policy, key) never name one bucket.
  if (bucket_key(group, policy, key) == bucket_key(other, policy, key) && group != other)
    std::abort();
  if (bucket_key(group, policy, key) == bucket_key(group, other, key) && policy != other)
    std::abort();
  if (bucket_key(group, policy, key) == bucket_key(group, policy, other) && key != other)
    std::abort();
  if (tenant_field(policy, key) == tenant_field(other, key) && policy != other) std::abort();
  return 0;
}
