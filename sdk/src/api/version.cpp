#include "tollgate/version.h"

namespace tollgate {

std::string_view version() noexcept {
  return TOLLGATE_VERSION_STRING;
}

}  // namespace tollgate
