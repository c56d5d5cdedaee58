// Replies from a Redis shard that may be broken or hostile: hiredis's reader fed arbitrary
// bytes in arbitrary pieces (the first byte chooses the piece size), then what the store
// makes of each reply as a lease answer and as a give-back answer. Nothing crashes, leaks
// or allocates without bound (libFuzzer's -malloc_limit_mb catches an array header that
// asks for gigabytes); a protocol error ends the parser, as it ends the connection.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#include "store/redis/lease_reply.h"
#include "store/redis/resp.h"

using namespace tollgate::redis;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const char* p = reinterpret_cast<const char*>(data + 1);
  std::size_t left = size - 1;
  ReplyParser parser;
  try {
    while (left > 0) {
      const std::size_t n = std::min(piece, left);
      parser.feed(p, n);
      p += n;
      left -= n;
      Reply r;
      while (parser.next(r)) {
        const tollgate::LeaseGrant g = to_grant(r);
        if (!g.ok && g.error.empty()) std::abort();  // a failed grant says why
        if (g.ok && g.granted > static_cast<std::uint64_t>(INT64_MAX)) std::abort();
        (void)needs_script_load(r);
      }
    }
  } catch (const std::runtime_error&) {
    return 0;  // protocol error: the connection would be closed and a new parser made
  }
  return 0;
}
