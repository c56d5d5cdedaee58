// tollgate.Decision: an immutable CPython object around a tollgate::Decision.

#include <array>
#include <cstdio>
#include <string_view>

#include "casters.h"

namespace py = pybind11;

namespace tollgate_py {
namespace {

PyTypeObject* g_type = nullptr;
std::array<PyObject*, tollgate::kReasonCount> g_reasons{};  // interned, owned for ever

const tollgate::Decision& of(PyObject* self) {
  return reinterpret_cast<DecisionObject*>(self)->d;
}

double seconds(tollgate::Nanos n) {
  return static_cast<double>(n.count()) / 1e9;
}

PyObject* get_allowed(PyObject* self, void*) {
  return PyBool_FromLong(of(self).allowed ? 1 : 0);
}
PyObject* get_reason(PyObject* self, void*) {
  PyObject* r = reason_name(of(self).reason);
  Py_INCREF(r);
  return r;
}
PyObject* get_remaining(PyObject* self, void*) {
  return PyLong_FromLongLong(of(self).remaining);
}
PyObject* get_retry_after(PyObject* self, void*) {
  return PyFloat_FromDouble(seconds(of(self).retry_after));
}

PyGetSetDef g_getset[] = {
    {"allowed", get_allowed, nullptr, "True when admitted.", nullptr},
    {"reason", get_reason, nullptr, "Why: 'ok', 'over_limit', 'cold_key', ... (see REASONS).",
     nullptr},
    {"remaining", get_remaining, nullptr, "Tokens (or permits) left in the key's local lease.",
     nullptr},
    {"retry_after", get_retry_after, nullptr,
     "Seconds until a retry may succeed when denied; 0.0 when allowed or unknown.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

int nb_bool(PyObject* self) {
  return of(self).allowed ? 1 : 0;
}

PyObject* repr(PyObject* self) {
  const auto& d = of(self);
  PyObject* retry = PyFloat_FromDouble(seconds(d.retry_after));
  if (retry == nullptr) return nullptr;
  PyObject* out =
      PyUnicode_FromFormat("Decision(allowed=%s, reason='%U', remaining=%lld, retry_after=%R)",
                           d.allowed ? "True" : "False", reason_name(d.reason),
                           static_cast<long long>(d.remaining), retry);
  Py_DECREF(retry);
  return out;
}

PyObject* richcompare(PyObject* a, PyObject* b, int op) {
  if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, g_type)) Py_RETURN_NOTIMPLEMENTED;
  const auto& x = of(a);
  const auto& y = of(b);
  const bool eq = x.allowed == y.allowed && x.reason == y.reason && x.remaining == y.remaining &&
                  x.retry_after == y.retry_after;
  return PyBool_FromLong((op == Py_EQ) == eq ? 1 : 0);
}

Py_hash_t hash(PyObject* self) {
  const auto& d = of(self);
  auto h = static_cast<Py_uhash_t>(d.remaining) * 1000003u;
  h ^= static_cast<Py_uhash_t>(d.retry_after.count()) * 31u;
  h ^= (static_cast<Py_uhash_t>(d.reason) << 1) | (d.allowed ? 1u : 0u);
  auto out = static_cast<Py_hash_t>(h);
  return out == -1 ? -2 : out;
}

PyType_Slot g_slots[] = {
    {Py_tp_doc, const_cast<char*>("The answer to one acquire: allowed, reason, remaining, "
                                  "retry_after (seconds). True when allowed. Immutable.")},
    {Py_tp_getset, g_getset},
    {Py_tp_repr, reinterpret_cast<void*>(repr)},
    {Py_tp_richcompare, reinterpret_cast<void*>(richcompare)},
    {Py_tp_hash, reinterpret_cast<void*>(hash)},
    {Py_nb_bool, reinterpret_cast<void*>(nb_bool)},
    {0, nullptr},
};

PyType_Spec g_spec = {
    "tollgate.Decision",
    sizeof(DecisionObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    g_slots,
};

}  // namespace

PyTypeObject* decision_type() {
  return g_type;
}

PyObject* reason_name(tollgate::Reason r) noexcept {
  auto i = static_cast<std::size_t>(r);
  return i < g_reasons.size() ? g_reasons[i] : Py_None;
}

PyObject* make_decision(const tollgate::Decision& d) noexcept {
  auto* o = PyObject_New(DecisionObject, g_type);
  if (o == nullptr) return nullptr;
  o->d = d;
  return reinterpret_cast<PyObject*>(o);
}

void init_decision_type(py::module_& m) {
  for (int r = 0; r < tollgate::kReasonCount; ++r) {
    std::string_view name = tollgate::to_string(static_cast<tollgate::Reason>(r));
    PyObject* s = PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(name.size()));
    if (s == nullptr) throw py::error_already_set();
    PyUnicode_InternInPlace(&s);
    g_reasons[static_cast<std::size_t>(r)] = s;
  }
  g_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&g_spec));
  if (g_type == nullptr) throw py::error_already_set();
  m.attr("Decision") = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(g_type));
}

}  // namespace tollgate_py
