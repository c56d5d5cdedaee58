// Redis Cluster routing, pure: slots, the slot map replies, redirections.
#include "store/redis/cluster_map.h"

#include <gtest/gtest.h>

#include "store/redis/keys.h"

namespace tollgate::redis {
namespace {

Reply str(std::string s) {
  Reply r;
  r.type = Reply::Type::kString;
  r.str = std::move(s);
  return r;
}
Reply num(long long v) {
  Reply r;
  r.type = Reply::Type::kInteger;
  r.integer = v;
  return r;
}
Reply arr(std::vector<Reply> e) {
  Reply r;
  r.type = Reply::Type::kArray;
  r.elements = std::move(e);
  return r;
}
Reply err(std::string s) {
  Reply r;
  r.type = Reply::Type::kError;
  r.str = std::move(s);
  return r;
}

TEST(ClusterMap, SlotsAreRedisClustersCrc16) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);  // the XMODEM check value
  // Values Redis answers to CLUSTER KEYSLOT.
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") & 16383);  // empty tag: whole key
}

TEST(ClusterMap, EveryKeyOfAGroupIsInTheGroupsSlot) {
  for (const char* g : {"acme", "a}{b", "tenant:42", "%7B"}) {
    const int slot = group_slot(g);
    EXPECT_EQ(key_slot(bucket_key(g, "p", "k")), slot) << g;
    EXPECT_EQ(key_slot(request_key(g, "i:1")), slot) << g;
    EXPECT_EQ(key_slot(group_key(g)), slot) << g;
  }
}

TEST(ClusterMap, ReadsClusterShards) {
  auto node = [](const char* ip, int port, const char* role, const char* health) {
    return arr({str("id"), str("x"), str("port"), num(port), str("tls-port"), num(port + 1),
                str("ip"), str(ip), str("endpoint"), str(ip), str("role"), str(role), str("health"),
                str(health)});
  };
  const Reply r = arr({
      arr({str("slots"), arr({num(0), num(99), num(200), num(299)}), str("nodes"),
           arr({node("10.0.0.2", 7001, "replica", "online"),
                node("10.0.0.1", 7000, "master", "online")})}),
      arr({str("slots"), arr({num(100), num(199)}), str("nodes"),
           arr({node("10.0.0.3", 7002, "master", "fail"),
                node("10.0.0.4", 7003, "master", "online")})}),
      arr({str("slots"), arr({}), str("nodes"), arr({node("10.0.0.9", 7009, "master", "online")})}),
  });
  const auto ranges = parse_cluster_shards(r, false);
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0].first, 0);
  EXPECT_EQ(ranges[0].last, 99);
  EXPECT_EQ(ranges[0].host, "10.0.0.1");
  EXPECT_EQ(ranges[0].port, 7000);
  EXPECT_EQ(ranges[1].first, 200);
  EXPECT_EQ(ranges[2].host, "10.0.0.4");  // the failed primary is passed over
  EXPECT_EQ(parse_cluster_shards(r, true)[0].port, 7001);
  EXPECT_THROW(parse_cluster_shards(str("x"), false), std::runtime_error);
  EXPECT_THROW(parse_cluster_shards(arr({arr({str("slots"), arr({num(5), num(16384)}), str("nodes"),
                                              arr({node("h", 1, "master", "")})})}),
                                    false),
               std::runtime_error);
}

TEST(ClusterMap, ReadsClusterSlots) {
  const Reply r = arr({arr({num(0), num(5460), arr({str("127.0.0.1"), num(7000), str("id")}),
                            arr({str("127.0.0.1"), num(7003), str("id2")})}),
                       arr({num(5461), num(16383), arr({str("127.0.0.1"), num(7001)})})});
  const auto ranges = parse_cluster_slots(r);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].port, 7000);
  EXPECT_EQ(ranges[1].first, 5461);
  EXPECT_EQ(ranges[1].last, 16383);
  EXPECT_THROW(parse_cluster_slots(arr({arr({num(0)})})), std::runtime_error);
}

TEST(ClusterMap, ReadsRedirections) {
  auto m = parse_redirect(err("MOVED 3999 127.0.0.1:6381"));
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->ask);
  EXPECT_EQ(m->slot, 3999);
  EXPECT_EQ(m->host, "127.0.0.1");
  EXPECT_EQ(m->port, 6381);
  auto a = parse_redirect(err("ASK 1 ::1:7000"));
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->ask);
  EXPECT_EQ(a->host, "::1");
  EXPECT_FALSE(parse_redirect(err("MOVED 3999 :6381")));  // unknown endpoint
  EXPECT_FALSE(parse_redirect(err("MOVED 16384 h:1")));
  EXPECT_FALSE(parse_redirect(err("MOVEDX 1 h:1")));
  EXPECT_FALSE(parse_redirect(str("MOVED 1 h:1")));
  EXPECT_FALSE(parse_redirect(err("TRYAGAIN Multiple keys request during rehashing of slot")));
}

}  // namespace
}  // namespace tollgate::redis
