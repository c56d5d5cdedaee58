#pragma once

#include <string_view>

#include "tollgate/export.h"

#define TOLLGATE_VERSION_MAJOR 0
#define TOLLGATE_VERSION_MINOR 1
#define TOLLGATE_VERSION_PATCH 0
#define TOLLGATE_VERSION_STRING "0.1.0"

namespace tollgate {

// The version of the library that is loaded at run time (the macros above are
// the version a program was compiled against).
TOLLGATE_API std::string_view version() noexcept;

}  // namespace tollgate
