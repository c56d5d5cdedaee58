// The Lua scripts the build embeds (redis/lua_scripts.h): the SHA1 computed by the build is
// the one Redis names the text by, and the ARGV slots are the files' `slots` tables.
#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "redis/scripts.h"

namespace tollgate::redis {
namespace {

std::string sha1_hex(std::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::ostringstream out;
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char b : digest) out << kHex[b >> 4] << kHex[b & 15];
  return out.str();
}

TEST(LuaScripts, ShaIsTheTextsSha1) {
  EXPECT_EQ(sha1_hex(lua::kLeaseText), lua::kLeaseSha1);
  EXPECT_EQ(sha1_hex(lua::kGiveBackText), lua::kGiveBackSha1);
}

TEST(LuaScripts, SlotsNameTheEnumsInOrder) {
  EXPECT_EQ(lua::kLeaseSlots[static_cast<std::size_t>(LeaseArg::kKind)], "kind");
  EXPECT_EQ(lua::kLeaseSlots[static_cast<std::size_t>(LeaseArg::kGroupRate)], "group_rate");
  EXPECT_EQ(lua::kLeaseSlots[static_cast<std::size_t>(LeaseArg::kTenant)], "tenant");
  EXPECT_EQ(lua::kGiveBackSlots[static_cast<std::size_t>(GiveBackArg::kExpiresAtUs)],
            "expires_at_us");
  EXPECT_EQ(lua::kGiveBackSlots[static_cast<std::size_t>(GiveBackArg::kWindowUs)], "window_us");
}

}  // namespace
}  // namespace tollgate::redis
