// Redis Cluster's routing, pure: a key's hash slot (CRC16 of its hash tag), a group's
// slot, the replies that describe the slot map (CLUSTER SHARDS, CLUSTER SLOTS) and the
// redirections (MOVED, ASK). No sockets in this file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/redis/resp.h"

namespace tollgate::redis {

inline constexpr int kClusterSlots = 16384;

// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
std::uint16_t crc16(std::string_view data) noexcept;
// A key's slot as Redis computes it: of the text between the first '{' and the next '}'
// when that is not empty, else of the whole key.
int key_slot(std::string_view key) noexcept;
// The slot of every key of a group (tg:{<escaped group>}:…): bucket, request records and
// the group's hash move together. An empty group has no tag (its keys would spread);
// the Limiter never makes one (keys are not empty).
int group_slot(std::string_view group);

// One range of slots and the primary that serves it.
struct SlotRange {
  int first = 0;
  int last = 0;
  std::string host;
  int port = 0;
};
// CLUSTER SHARDS (Redis 7): per shard its slot ranges and nodes; the primary is the
// node whose role is "master" (one that is not failed, if the reply lists two). With
// `tls`, the node's "tls-port". Throws std::runtime_error for a reply of another shape.
std::vector<SlotRange> parse_cluster_shards(const Reply& reply, bool tls);
// CLUSTER SLOTS (older servers): [first, last, [host, port, id…], replicas…] per range.
std::vector<SlotRange> parse_cluster_slots(const Reply& reply);

// "MOVED 3999 127.0.0.1:6381" (the slot has a new owner) or "ASK 3999 127.0.0.1:6381"
// (this key is being migrated: ask there once, after ASKING).
struct Redirect {
  bool ask = false;
  int slot = 0;
  std::string host;
  int port = 0;
};
std::optional<Redirect> parse_redirect(const Reply& reply);

}  // namespace tollgate::redis
