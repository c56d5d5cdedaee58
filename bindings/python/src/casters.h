// The Python Decision type and its pybind11 type caster. Every translation unit of the
// module includes this header, so all of them convert tollgate::Decision the same way.
//
// Decision is a plain CPython type (not a pybind11 class): try_acquire makes one per call,
// and a pybind11 instance costs a heap holder and an entry in pybind11's instance registry,
// which was most of the time of a call from Python.
#pragma once

#include <pybind11/pybind11.h>

#include "tollgate/decision.h"

namespace tollgate_py {

struct DecisionObject {
  PyObject_HEAD tollgate::Decision d;
};

// The type, made by init_decision_type() at module import.
PyTypeObject* decision_type();
// Adds the type to the module as `Decision`. Throws error_already_set.
void init_decision_type(pybind11::module_& m);
// A new reference to a Decision object, or nullptr with a Python error set.
PyObject* make_decision(const tollgate::Decision& d) noexcept;
// The interned name of a reason ("over_limit"), borrowed.
PyObject* reason_name(tollgate::Reason r) noexcept;

}  // namespace tollgate_py

namespace pybind11::detail {

template <>
struct type_caster<tollgate::Decision> {
  PYBIND11_TYPE_CASTER(tollgate::Decision, const_name("Decision"));

  bool load(handle src, bool /*convert*/) {
    if (!src || !PyObject_TypeCheck(src.ptr(), tollgate_py::decision_type())) return false;
    value = reinterpret_cast<tollgate_py::DecisionObject*>(src.ptr())->d;
    return true;
  }
  static handle cast(const tollgate::Decision& d, return_value_policy /*policy*/,
                     handle /*parent*/) {
    PyObject* o = tollgate_py::make_decision(d);
    if (o == nullptr) throw error_already_set();
    return o;
  }
};

}  // namespace pybind11::detail
