// The `store` section of the config: the config reads its "type"; each store type reads and
// checks the fields of its own (docs/configuration.md). The store types are registered from
// above (facade/factory.cpp, at load time), so the config knows no store and calls none.
#pragma once

#include <string_view>
#include <vector>

#include "config/config_schema.h"
#include "tollgate/config.h"

namespace tollgate::core {

struct StoreSection {
  std::string_view type;                         // "in_process", "redis"
  const json::Schema<StoreConfig>& (*fields)();  // its fields beside "type"
  void (*validate)(const StoreConfig& store);    // its value rules (store.*)
};

// Every store type registered, in the order registered (error messages list them so).
// Registration happens during static initialisation; reading after it is thread-safe.
const std::vector<StoreSection>& store_sections();
void register_store_section(const StoreSection& section);

}  // namespace tollgate::core
