#include "core/store_factory.h"

#include "redis/redis_store.h"

namespace tollgate {

std::shared_ptr<QuotaStore> make_store(const Config& config, std::shared_ptr<const Clock> clock) {
  if (config.store.type == "redis" || config.store.type == "redis_cluster") {
    return std::make_shared<redis::RedisStore>(config.store, std::move(clock));
  }
  return std::make_shared<InProcessStore>(std::move(clock));
}

}  // namespace tollgate
