// Redis key names and shard routing. Everything that comes from users (group, policy
// name, key, instance id) is escaped, so that no tenant id can move a key to another hash
// slot or collide with another tenant's key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tollgate::redis {

// Percent-encodes '{', '}', ':', '%' and bytes outside printable ASCII. Injective, and the
// result holds none of "{}:", so a hash tag "{…}" around it is exactly its own.
std::string escape(std::string_view part);

// tg:{group}:b:policy:key — a key's bucket; its group's hash tag keeps a group in one slot.
std::string bucket_key(std::string_view group, std::string_view policy, std::string_view key);
// tg:{group}:g — a group's budget and its tenants' demand (docs/quotas.md).
std::string group_key(std::string_view group);
// policy:key, escaped — a key's field in its group's hash.
std::string tenant_field(std::string_view policy, std::string_view key);
// tg:{group}:r:request_id — a lease request's remembered answer.
std::string request_key(std::string_view group, std::string_view request_id);

// A stable 64-bit hash (FNV-1a with a final mix): the same group maps to the same shard in
// every process and every language binding.
std::uint64_t stable_hash(std::string_view s) noexcept;
// Lamping & Veach's jump consistent hash: a bucket in [0, buckets); growing from n to n+1
// buckets moves only ~1/(n+1) of the keys.
std::int32_t jump_hash(std::uint64_t key, std::int32_t buckets) noexcept;
inline std::int32_t shard_of(std::string_view group, std::int32_t shards) noexcept {
  return jump_hash(stable_hash(group), shards);
}

}  // namespace tollgate::redis
