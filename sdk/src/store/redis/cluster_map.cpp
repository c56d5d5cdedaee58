#include "store/redis/cluster_map.h"

#include <charconv>
#include <stdexcept>

#include "store/redis/keys.h"

namespace tollgate::redis {
namespace {

const Reply* field(const Reply& map, std::string_view name) {
  // RESP2 shows a map as a flat array: name, value, name, value…
  if (map.type != Reply::Type::kArray) return nullptr;
  for (std::size_t i = 0; i + 1 < map.elements.size(); i += 2) {
    if (map.elements[i].str == name) return &map.elements[i + 1];
  }
  return nullptr;
}

std::string text(const Reply* r) {
  return r != nullptr && (r->type == Reply::Type::kString || r->type == Reply::Type::kStatus)
             ? r->str
             : std::string();
}

long long integer(const Reply* r) {
  if (r == nullptr) return -1;
  if (r->type == Reply::Type::kInteger) return r->integer;
  long long v = -1;
  std::from_chars(r->str.data(), r->str.data() + r->str.size(), v);
  return v;
}

[[noreturn]] void malformed(const char* what) {
  throw std::runtime_error(std::string("unexpected reply to ") + what);
}

bool valid_range(long long first, long long last) {
  return first >= 0 && last >= first && last < kClusterSlots;
}

}  // namespace

std::uint16_t crc16(std::string_view data) noexcept {
  std::uint16_t crc = 0;
  for (char ch : data) {
    crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(ch) << 8);
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

int key_slot(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16(key) & (kClusterSlots - 1);
}

int group_slot(std::string_view group) {
  return crc16(escape(group)) & (kClusterSlots - 1);
}

std::vector<SlotRange> parse_cluster_shards(const Reply& reply, bool tls) {
  if (reply.type != Reply::Type::kArray) malformed("CLUSTER SHARDS");
  std::vector<SlotRange> out;
  for (const Reply& shard : reply.elements) {
    const Reply* slots = field(shard, "slots");
    const Reply* nodes = field(shard, "nodes");
    if (slots == nullptr || nodes == nullptr || nodes->type != Reply::Type::kArray) {
      malformed("CLUSTER SHARDS");
    }
    const Reply* primary = nullptr;
    for (const Reply& n : nodes->elements) {
      if (text(field(n, "role")) != "master") continue;
      if (primary == nullptr || text(field(*primary, "health")) == "fail") primary = &n;
    }
    if (primary == nullptr || slots->elements.empty()) continue;  // no slots, or no primary
    std::string host = text(field(*primary, "endpoint"));
    if (host.empty() || host == "?") host = text(field(*primary, "ip"));
    const long long port = integer(field(*primary, tls ? "tls-port" : "port"));
    if (host.empty() || port <= 0 || port > 65535) malformed("CLUSTER SHARDS");
    for (std::size_t i = 0; i + 1 < slots->elements.size(); i += 2) {
      const long long first = integer(&slots->elements[i]);
      const long long last = integer(&slots->elements[i + 1]);
      if (!valid_range(first, last)) malformed("CLUSTER SHARDS");
      out.push_back(
          {static_cast<int>(first), static_cast<int>(last), host, static_cast<int>(port)});
    }
  }
  return out;
}

std::vector<SlotRange> parse_cluster_slots(const Reply& reply) {
  if (reply.type != Reply::Type::kArray) malformed("CLUSTER SLOTS");
  std::vector<SlotRange> out;
  for (const Reply& range : reply.elements) {
    if (range.type != Reply::Type::kArray || range.elements.size() < 3 ||
        range.elements[2].type != Reply::Type::kArray || range.elements[2].elements.size() < 2) {
      malformed("CLUSTER SLOTS");
    }
    const long long first = integer(&range.elements[0]);
    const long long last = integer(&range.elements[1]);
    const Reply& node = range.elements[2];
    const std::string host = text(&node.elements[0]);
    const long long port = integer(&node.elements[1]);
    if (!valid_range(first, last) || host.empty() || port <= 0 || port > 65535) {
      malformed("CLUSTER SLOTS");
    }
    out.push_back({static_cast<int>(first), static_cast<int>(last), host, static_cast<int>(port)});
  }
  return out;
}

std::optional<Redirect> parse_redirect(const Reply& reply) {
  const bool moved = reply.error_code_is("MOVED");
  if (!moved && !reply.error_code_is("ASK")) return std::nullopt;
  // "<CODE> <slot> <host>:<port>"; an empty host (unknown endpoint) is not followed.
  const std::string_view s = reply.str;
  const auto a = s.find(' ');
  const auto b = s.find(' ', a + 1);
  const auto colon = s.rfind(':');
  if (a == std::string_view::npos || b == std::string_view::npos ||
      colon == std::string_view::npos || colon < b) {
    return std::nullopt;
  }
  Redirect r;
  r.ask = !moved;
  const auto slot = s.substr(a + 1, b - a - 1);
  const auto port = s.substr(colon + 1);
  if (std::from_chars(slot.data(), slot.data() + slot.size(), r.slot).ec != std::errc{} ||
      std::from_chars(port.data(), port.data() + port.size(), r.port).ec != std::errc{}) {
    return std::nullopt;
  }
  r.host = std::string(s.substr(b + 1, colon - b - 1));
  if (r.host.empty() || r.slot < 0 || r.slot >= kClusterSlots || r.port <= 0 || r.port > 65535) {
    return std::nullopt;
  }
  return r;
}

}  // namespace tollgate::redis
