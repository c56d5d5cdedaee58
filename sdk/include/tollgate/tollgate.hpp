// Tollgate's C++ API, all of it.
#pragma once

#include "tollgate/clock.h"
#include "tollgate/config.h"
#include "tollgate/config_source.h"
#include "tollgate/decision.h"
#include "tollgate/limiter.h"
#include "tollgate/manual_clock.h"
#include "tollgate/prometheus.h"
#include "tollgate/quota_store.h"
#include "tollgate/version.h"
