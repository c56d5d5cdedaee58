# Turns the metric vocabulary (sdk/src/telemetry/metrics.json) into a C++ header: run at
# build time by sdk/CMakeLists.txt, so the Prometheus exposition cannot part from the table
# the bindings' tests read.
#   cmake -DIN=<metrics.json> -DOUT=<header> -P embed_metrics.cmake
# The header holds, in namespace tollgate::telemetry: kMetrics (one MetricSpec per entry,
# in the file's order) and kLeaseDurationBounds (the histogram's bucket bounds, seconds).
cmake_minimum_required(VERSION 3.25)

file(READ "${IN}" json)

function(quoted out value what)
  if(value MATCHES "[\"\\\\\n]")
    message(FATAL_ERROR "${IN}: ${what} holds a quote, backslash or newline")
  endif()
  set(${out} "\"${value}\"" PARENT_SCOPE)
endfunction()

set(kinds counter updowncounter histogram)
set(body "")
string(JSON count LENGTH "${json}" metrics)
math(EXPR last "${count} - 1")
foreach(i RANGE ${last})
  set(fields "")
  foreach(f name unit description stat prometheus)
    string(JSON v GET "${json}" metrics ${i} ${f})
    quoted(q "${v}" "metrics[${i}].${f}")
    list(APPEND fields "${q}")
  endforeach()
  string(JSON instrument GET "${json}" metrics ${i} instrument)
  list(FIND kinds "${instrument}" kind)
  if(kind LESS 0)
    message(FATAL_ERROR "${IN}: metrics[${i}].instrument: not one of ${kinds}")
  endif()
  string(JSON na LENGTH "${json}" metrics ${i} attributes)
  if(na GREATER 3)
    message(FATAL_ERROR "${IN}: metrics[${i}].attributes: at most 3 (MetricSpec holds 3)")
  endif()
  set(attrs "")
  if(na GREATER 0)
    math(EXPR alast "${na} - 1")
    foreach(a RANGE ${alast})
      string(JSON v GET "${json}" metrics ${i} attributes ${a})
      quoted(q "${v}" "metrics[${i}].attributes[${a}]")
      list(APPEND attrs "${q}")
    endforeach()
  endif()
  list(JOIN fields ", " fields)
  list(JOIN attrs ", " attrs)
  string(APPEND body "    MetricSpec{${fields}, Instrument{${kind}}, {${attrs}}, ${na}},\n")
endforeach()

string(JSON nb LENGTH "${json}" histogram_buckets_seconds)
math(EXPR blast "${nb} - 1")
set(bounds "")
foreach(i RANGE ${blast})
  string(JSON v GET "${json}" histogram_buckets_seconds ${i})
  list(APPEND bounds "${v}")
endforeach()
list(JOIN bounds ", " bounds)

file(WRITE "${OUT}" "// Generated at build time from sdk/src/telemetry/metrics.json by cmake/embed_metrics.cmake.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace tollgate::telemetry {

enum class Instrument { kCounter = 0, kUpDownCounter = 1, kHistogram = 2 };

struct MetricSpec {
  std::string_view name;         // OpenTelemetry name, e.g. tollgate.decisions
  std::string_view unit;         // UCUM, e.g. s, By, {decision}
  std::string_view description;  // also the Prometheus HELP
  std::string_view stat;         // where the value comes from in tollgate::Stats
  std::string_view prometheus;   // the exposed name
  Instrument instrument;
  std::array<std::string_view, 3> attributes;
  std::size_t attribute_count;
};

inline constexpr std::array<MetricSpec, ${count}> kMetrics{{
${body}}};

inline constexpr std::array<double, ${nb}> kLeaseDurationBounds{${bounds}};

}  // namespace tollgate::telemetry
")
