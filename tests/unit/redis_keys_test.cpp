// Pure parts of the Redis store: shard URLs, key escaping, routing, RESP parsing.
#include <gtest/gtest.h>

#include <climits>
#include <set>
#include <string>

#include "store/redis/connection.h"
#include "store/redis/keys.h"
#include "store/redis/lease_reply.h"
#include "store/redis/resp.h"

namespace tollgate::redis {
namespace {

TEST(Endpoint, ParsesEveryPart) {
  Endpoint e = Endpoint::parse("rediss://alice:s%40cret@cache.internal:6380/3");
  EXPECT_TRUE(e.tls);
  EXPECT_EQ(e.host, "cache.internal");
  EXPECT_EQ(e.port, 6380);
  EXPECT_EQ(e.user, "alice");
  EXPECT_EQ(e.password, "s@cret");
  EXPECT_EQ(e.db, 3);
  Endpoint d = Endpoint::parse("redis://127.0.0.1");
  EXPECT_FALSE(d.tls);
  EXPECT_EQ(d.port, 6379);
  EXPECT_TRUE(d.password.empty());
  EXPECT_EQ(Endpoint::parse("redis://:pw@[::1]:7000").host, "::1");
  EXPECT_EQ(Endpoint::parse("redis://pw@h:1").password, "pw");
}

TEST(Endpoint, RedactedFormNeverHoldsThePassword) {
  Endpoint e = Endpoint::parse("redis://alice:hunter2@h:1");
  EXPECT_EQ(e.redacted(), "redis://alice:***@h:1");
  EXPECT_EQ(Endpoint::parse("redis://:hunter2@h:1").redacted(), "redis://***@h:1");
  EXPECT_EQ(e.redacted().find("hunter2"), std::string::npos);
}

TEST(Endpoint, BadUrlsAreRefusedWithoutEchoingThePassword) {
  for (const char* url :
       {"http://h:1", "redis://:hunter2@:1", "redis://:hunter2@h:0", "redis://:hunter2@h:99999",
        "redis://:hunter2@h:1/x", "redis://:hun%zzter2@h:1"}) {
    try {
      Endpoint::parse(url);
      ADD_FAILURE() << url << " was accepted";
    } catch (const std::invalid_argument& ex) {
      EXPECT_EQ(std::string(ex.what()).find("hunter2"), std::string::npos) << ex.what();
    }
  }
}

TEST(Keys, EscapingIsInjectiveAndLeavesNoTagCharacters) {
  const std::string big(10 * 1024, '{');
  std::set<std::string> seen;
  for (const std::string& id :
       {std::string("a:b"), std::string("a%3Ab"), std::string("a}b"), std::string("a{b}"),
        std::string("a\nb"), std::string("a b"), big, std::string("plain")}) {
    const std::string e = escape(id);
    EXPECT_EQ(e.find_first_of("{}: \n"), std::string::npos) << e;
    EXPECT_TRUE(seen.insert(e).second) << id << " collides";
  }
}

TEST(Keys, BucketKeysCarryTheGroupAsTheirOnlyHashTag) {
  const std::string k = bucket_key("gr}oup", "pol{icy", "ten:ant}");
  EXPECT_EQ(k.rfind("tg:{gr%7Doup}:b:", 0), 0u) << k;
  // Redis hashes the text between the first '{' and the first '}' after it.
  const auto open = k.find('{');
  const auto close = k.find('}', open);
  EXPECT_EQ(k.substr(open + 1, close - open - 1), escape("gr}oup"));
  EXPECT_EQ(k.find_first_of("{}", close + 1), std::string::npos);
  EXPECT_NE(bucket_key("g", "a:b", "c"), bucket_key("g", "a", "b:c"));
}

// Found by the key fuzzer: "{}" is no hash tag to Redis (it hashes the whole key), so an
// empty group would have spread its keys over slots.
TEST(Keys, AnEmptyGroupStillHasAHashTagOfItsOwn) {
  EXPECT_EQ(group_key(""), "tg:{%}:g");
  EXPECT_EQ(bucket_key("", "p", "k"), "tg:{%}:b:p:k");
  EXPECT_EQ(request_key("", "id"), "tg:{%}:r:id");
  EXPECT_NE(group_key(""), group_key("%"));  // "%" itself escapes to "%25"
}

TEST(Keys, GoingFromSevenToEightShardsMovesAboutAnEighth) {
  int moved = 0;
  for (int g = 0; g < 10'000; ++g) {
    const std::string group = "group-" + std::to_string(g);
    const auto a = shard_of(group, 7), b = shard_of(group, 8);
    ASSERT_GE(a, 0);
    ASSERT_LT(b, 8);
    if (a != b) {
      ++moved;
      EXPECT_EQ(b, 7) << "a group may only move to the new shard";
    }
  }
  EXPECT_LE(moved, 10'000 / 8 + 200);
  EXPECT_GE(moved, 10'000 / 8 - 300);  // and it does spread onto the new shard
}

TEST(Keys, RoutingIsStable) {
  EXPECT_EQ(stable_hash("tenant:acme"), stable_hash(std::string("tenant:") + "acme"));
  EXPECT_EQ(jump_hash(0, 1), 0);
  EXPECT_EQ(shard_of("x", 1), 0);
}

TEST(Resp, EncodesCommandsAsBulkStrings) {
  std::string out;
  encode({"SET", "k", std::string("a\0b", 3)}, out);
  EXPECT_EQ(out, std::string("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\0b\r\n", 29));
}

TEST(Resp, ParsesRepliesThatArriveInPieces) {
  ReplyParser p;
  const std::string wire =
      "*2\r\n:42\r\n$5\r\nhello\r\n-NOSCRIPT No matching script\r\n+OK\r\n$-1\r\n";
  Reply r;
  for (char c : wire) p.feed(&c, 1);
  ASSERT_TRUE(p.next(r));
  ASSERT_EQ(r.type, Reply::Type::kArray);
  EXPECT_EQ(r.elements[0].integer, 42);
  EXPECT_EQ(r.elements[1].str, "hello");
  ASSERT_TRUE(p.next(r));
  EXPECT_TRUE(r.error_code_is("NOSCRIPT"));
  EXPECT_FALSE(r.error_code_is("NOSCRIPTS"));
  ASSERT_TRUE(p.next(r));
  EXPECT_EQ(r.type, Reply::Type::kStatus);
  ASSERT_TRUE(p.next(r));
  EXPECT_EQ(r.type, Reply::Type::kNil);
  EXPECT_FALSE(p.next(r));
}

TEST(Resp, ProtocolGarbageIsAnError) {
  ReplyParser p;
  p.feed("?what\r\n", 7);
  Reply r;
  EXPECT_THROW(p.next(r), std::runtime_error);
}

// hiredis 0.14 allocates an array's element pointers from its header alone, before any
// element arrives: "*2147483647" would ask for 16 GiB. Refused before it allocates.
TEST(Resp, AnArrayHeaderAskingForTooManyElementsIsAnError) {
  ReplyParser p;
  const std::string huge = "*2147483647\r\n";
  p.feed(huge.data(), huge.size());
  Reply r;
  EXPECT_THROW(p.next(r), std::runtime_error);
  // Nested arrays count together: a million-element array of million-element arrays.
  ReplyParser q;
  const std::string nested = "*1000\r\n*1048576\r\n";
  q.feed(nested.data(), nested.size());
  EXPECT_THROW(q.next(r), std::runtime_error);
  // Below the bound, an array arrives as usual, and the count starts again per reply.
  ReplyParser ok;
  for (int i = 0; i < 3; ++i) {
    const std::string two = "*2\r\n:1\r\n:2\r\n";
    ok.feed(two.data(), two.size());
    ASSERT_TRUE(ok.next(r));
    EXPECT_EQ(r.elements.size(), 2u);
  }
}

TEST(LeaseReply, MalformedRepliesAreFailedGrantsAndTimesNeverOverflow) {
  auto ints = [](std::vector<long long> v) {
    Reply r;
    r.type = Reply::Type::kArray;
    for (long long x : v) {
      Reply e;
      e.type = Reply::Type::kInteger;
      e.integer = x;
      r.elements.push_back(e);
    }
    return r;
  };
  LeaseGrant g = to_grant(ints({10, 1'000, 2'000, 5, 0, 2}));
  EXPECT_TRUE(g.ok);
  EXPECT_EQ(g.granted, 10u);
  EXPECT_EQ(g.expires_at, Nanos{2'000'000});
  EXPECT_EQ(g.limited_by, LimitLevel::kGroup);
  // What a broken or hostile server may send: microseconds that overflow nanoseconds.
  g = to_grant(ints({1, LLONG_MAX, LLONG_MIN, -3, LLONG_MAX}));
  EXPECT_TRUE(g.ok);
  EXPECT_EQ(g.remaining, 0u);
  EXPECT_GT(g.now.count(), 0);
  EXPECT_LT(g.expires_at.count(), 0);
  EXPECT_FALSE(to_grant(ints({1, 2, 3})).ok);
  Reply mixed = ints({1, 2, 3, 4, 5});
  mixed.elements[2].type = Reply::Type::kString;
  EXPECT_FALSE(to_grant(mixed).ok);
  Reply err;
  err.type = Reply::Type::kError;
  err.str = "NOSCRIPT No matching script";
  EXPECT_FALSE(to_grant(err).ok);
  EXPECT_TRUE(needs_script_load(err));
}

}  // namespace
}  // namespace tollgate::redis
