// The store a Limiter uses when Options::store is not given: the one its config names.
// The facade's: the one layer that knows both the limiter and the stores (facade/factory.cpp).
#pragma once

#include <memory>

#include "tollgate/quota_store.h"

namespace tollgate {
std::shared_ptr<QuotaStore> make_store(const Config& config, std::shared_ptr<const Clock> clock);
}  // namespace tollgate
