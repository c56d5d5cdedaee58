// The QuotaStore seam's one out-of-line definition (its vtable's home), below every store.
#include "tollgate/quota_store.h"

namespace tollgate {

QuotaStore::~QuotaStore() = default;

}  // namespace tollgate
