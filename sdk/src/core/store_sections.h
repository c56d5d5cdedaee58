// The `store` section of the config: core reads its "type"; each store type reads and
// checks the fields of its own (docs/configuration.md). The list of store types is kept
// with the stores (store/factory.cpp), so the config knows no store's fields.
#pragma once

#include <string_view>
#include <vector>

#include "core/config_schema.h"
#include "tollgate/config.h"

namespace tollgate::core {

struct StoreSection {
  std::string_view type;                         // "in_process", "redis"
  const json::Schema<StoreConfig>& (*fields)();  // its fields beside "type"
  void (*validate)(const StoreConfig& store);    // its value rules (store.*)
};

// Every store type this build knows, in the order error messages list them.
const std::vector<StoreSection>& store_sections();

}  // namespace tollgate::core
