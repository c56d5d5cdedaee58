// The store a Limiter uses when Options::store is not given: the one its config names.
// Declared here, on core's side of the QuotaStore seam; defined in store/ (which knows the
// in-process and Redis stores), so core includes nothing of the stores.
#pragma once

#include <memory>

#include "tollgate/quota_store.h"

namespace tollgate {
std::shared_ptr<QuotaStore> make_store(const Config& config, std::shared_ptr<const Clock> clock);
}  // namespace tollgate
