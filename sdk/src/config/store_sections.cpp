#include "config/store_sections.h"

namespace tollgate::core {

namespace {
std::vector<StoreSection>& registry() {
  static std::vector<StoreSection> sections;
  return sections;
}
}  // namespace

const std::vector<StoreSection>& store_sections() {
  return registry();
}

void register_store_section(const StoreSection& section) {
  registry().push_back(section);
}

}  // namespace tollgate::core
