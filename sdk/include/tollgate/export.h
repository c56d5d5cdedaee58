// Symbol visibility: the library is built with -fvisibility=hidden and only what
// carries TOLLGATE_API is exported.
#pragma once

#if defined(_WIN32)
#define TOLLGATE_API
#else
#define TOLLGATE_API __attribute__((visibility("default")))
#endif
