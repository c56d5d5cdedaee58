// The C API's argument checks: any sequence of calls with any pointers-or-NULL, lengths,
// costs, counts, versions, buffer sizes and config updates returns a status; nothing crashes,
// nothing throws across the boundary, nothing leaks. One in-process limiter, no SDK thread's timing
// in the outcome (decisions are not checked, only that each call is answered).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tollgate/tollgate.h"

namespace {

constexpr char kConfig[] =
    R"({"instance_id": "fuzz", "max_keys": 64, "max_key_length": 24,
        "policies": [
          {"name": "t", "match": "t:*", "type": "token_bucket", "rate": 100, "burst": 100},
          {"name": "c", "match": "c:*", "type": "concurrency", "limit": 4}]})";
// What tg_limiter_update may swap in: other limits, another policy for some keys.
constexpr char kOtherConfig[] =
    R"({"instance_id": "fuzz", "max_keys": 64, "max_key_length": 24,
        "policies": [
          {"name": "t2", "match": "t:*", "type": "token_bucket", "rate": 10, "burst": 5},
          {"name": "tx", "match": "t:x", "type": "token_bucket", "rate": 1, "burst": 1},
          {"name": "c2", "match": "c:*", "type": "concurrency", "limit": 2}]})";

struct Input {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | byte();
    return v;
  }
};

tg_limiter* limiter() {
  static tg_limiter* l = [] {
    tg_limiter* out = nullptr;
    char err[256];
    if (tg_limiter_create(&out, kConfig, nullptr, err, sizeof err) != TG_OK) std::abort();
    return out;
  }();
  return l;
}

void on_done(const tg_decision*, void* user_data) {
  ++*static_cast<int*>(user_data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in{data, size};
  tg_limiter* l = limiter();
  std::vector<tg_permit*> permits;
  int completions = 0;
  char key[40];
  while (in.n > 0) {
    const std::uint8_t op = in.byte();
    // A key: its length (possibly past max_key_length, or claiming more than is there only
    // when the pointer is NULL), bytes from the input.
    const std::size_t len = in.byte() % sizeof key;
    for (std::size_t i = 0; i < len; ++i) key[i] = static_cast<char>(in.byte());
    if (len >= 2 && (op & 0x40)) std::memcpy(key, (op & 0x80) ? "c:" : "t:", 2);
    const char* k = (op & 0x20) && len == 0 ? nullptr : key;
    const std::size_t klen = k == nullptr ? in.byte() : len;
    const std::uint64_t cost = in.byte() < 200 ? in.byte() : in.u64();
    tg_decision d;
    tg_decision* out = (op & 0x10) ? nullptr : &d;
    tg_limiter* target = (op & 0x08) && (op & 0x04) ? nullptr : l;
    switch (op % 8) {
      case 0:
      case 1:
        (void)tg_try_acquire(out, target, k, klen, cost);
        break;
      case 2:
        (void)tg_acquire(out, target, k, klen, cost, 0);  // no wait: a fuzzer must not block
        break;
      case 3: {
        std::uint64_t id = 0;
        if (tg_acquire_async(&id, target, k, klen, cost,
                             static_cast<std::int64_t>(in.byte()) * 1000, on_done,
                             &completions) == TG_OK &&
            id != 0) {
          int cancelled = 0;
          (void)tg_cancel(&cancelled, l, id);
        }
        break;
      }
      case 4: {
        tg_permit* permit = nullptr;
        (void)tg_acquire_permit((op & 0x10) ? nullptr : &permit, out, target, k, klen,
                                static_cast<std::uint32_t>(cost));
        if (permit != nullptr) permits.push_back(permit);
        break;
      }
      case 5: {
        tg_stats st;
        const unsigned version = in.byte() % 4;
        if (tg_stats_init(&st, version) == TG_OK) (void)tg_limiter_stats(&st, target);
        (void)tg_limiter_stats((op & 0x10) ? nullptr : &st, target);
        tg_breaker_state states[2];
        std::size_t count = 0;
        (void)tg_limiter_breakers((op & 0x10) ? nullptr : states, in.byte() % 3, &count, target);
        tg_policy_stats policies[2];
        (void)tg_limiter_policy_stats((op & 0x10) ? nullptr : policies, in.byte() % 3,
                                      (op & 0x20) ? nullptr : &count, target);
        char name[8];
        std::size_t length = 0;
        (void)tg_limiter_policy_name((op & 0x10) ? nullptr : name, in.byte() % (sizeof name + 1),
                                     (op & 0x20) ? nullptr : &length, target, in.byte() % 4);
        break;
      }
      case 6: {
        // Config checks with any text (NUL-terminated here) and any error buffer size.
        std::string text(key, len);
        char err[16];
        const std::size_t errlen = in.byte() % (sizeof err + 1);
        (void)tg_config_validate((op & 0x10) ? nullptr : text.c_str(), errlen ? err : nullptr,
                                 errlen);
        // Live updates: any text (refused), or one of two valid configs (keys move).
        const char* update = (op & 0x20) ? ((op & 0x80) ? kConfig : kOtherConfig) : text.c_str();
        (void)tg_limiter_update(target, (op & 0x10) ? nullptr : update, errlen ? err : nullptr,
                                errlen);
        tg_limiter_options opts;
        (void)tg_limiter_options_init((op & 0x20) ? nullptr : &opts, in.byte() % 3);
        break;
      }
      default:
        (void)tg_cancel(nullptr, target, in.u64());
        (void)tg_status_str(static_cast<tg_status>(in.byte()));
        (void)tg_reason_str(static_cast<tg_reason>(in.byte()));
        break;
    }
  }
  for (tg_permit* p : permits) tg_permit_destroy(&p);
  tg_permit_destroy(nullptr);
  tg_limiter_destroy(nullptr);
  (void)completions;
  return 0;
}
