// The strict JSON config reader and validation: any bytes give a Config or a ConfigError
// naming a field, never another exception, a crash or a leak. A config that is accepted
// validates again and builds a Limiter (in-process store, no thread).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tollgate/config.h"
#include "tollgate/limiter.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  tollgate::Config config;
  try {
    config = tollgate::Config::from_json(json);
  } catch (const tollgate::ConfigError& e) {
    if (std::string_view(e.what()).empty()) std::abort();  // an error always says why
    return 0;
  }
  config.validate();  // accepted once: accepted again (throws, and so fails, otherwise)
  // Redis stores would connect; the in-process store is what can be built here.
  if (config.store.shards.empty() && config.max_keys <= 100'000) {
    tollgate::Limiter::Options options;
    options.background_thread = false;
    tollgate::Limiter limiter(std::move(config), std::move(options));
    (void)limiter.try_acquire("tenant:a");
    limiter.poll();
  }
  return 0;
}
