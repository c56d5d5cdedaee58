// tollgate._native: the pybind11 module behind the pure-Python package `tollgate`.
//
// Threads and the GIL. The SDK calls back (acquire_async completions, Observer) from its
// own threads, sometimes while holding its scheduler lock. So every call into the SDK that
// may take a lock or wait runs with the GIL released, and every callback takes the GIL
// before touching Python. try_acquire and acquire_permit are lock-free and keep the GIL
// (releasing it would cost more than the call). A native Limiter is only ever destroyed
// with the GIL released, since its destructor joins threads that may be waiting for it.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cxxabi.h>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "casters.h"
#include "tollgate/tollgate.hpp"

namespace py = pybind11;
using namespace std::chrono_literals;

namespace {

// Set by _native._shutdown() (the package's atexit hook): from then on SDK threads never
// try to take the GIL, since a thread that does so during finalization is never resumed.
std::atomic<bool> g_interpreter_exiting{false};

bool python_usable() {
  return !g_interpreter_exiting.load(std::memory_order_acquire) && Py_IsInitialized() != 0 &&
         _Py_IsFinalizing() == 0;
}

// A Python object that may be copied and dropped on any thread, with or without the GIL.
// Shared, so copies need no GIL; the last owner takes the GIL to drop the reference.
class SharedObject {
 public:
  SharedObject() = default;
  explicit SharedObject(py::object obj) : ref_(std::make_shared<Ref>(std::move(obj))) {}
  // The caller holds the GIL.
  const py::object& get() const { return ref_->obj; }
  explicit operator bool() const { return ref_ != nullptr; }

 private:
  struct Ref {
    explicit Ref(py::object o) : obj(std::move(o)) {}
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
    ~Ref() {
      if (!python_usable()) {
        obj.release();  // leaked on purpose: the interpreter is going away
        return;
      }
      py::gil_scoped_acquire gil;
      obj = py::object();
    }
    py::object obj;
  };
  std::shared_ptr<Ref> ref_;
};

// Reports an exception raised by a callback that has no caller to raise it to.
void write_unraisable(py::error_already_set& e, const char* where) {
  e.restore();
  PyErr_WriteUnraisable(py::str(where).ptr());
}

// Runs f() with the GIL released, on a Python thread. The GIL is taken back in ordinary
// code, never in a destructor (unlike py::gil_scoped_release): at exit Python ends daemon
// threads that try to take it with pthread_exit, whose forced unwind must not leave a
// destructor or a noexcept function (std::terminate), and must not be swallowed.
template <typename F>
auto without_gil(F&& f) -> decltype(f()) {
  PyThreadState* ts = PyEval_SaveThread();
  try {
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      PyEval_RestoreThread(ts);
    } else {
      auto result = f();
      PyEval_RestoreThread(ts);
      return result;
    }
  } catch (abi::__forced_unwind&) {
    throw;  // the thread is being ended; the GIL is not ours to take back
  } catch (...) {
    PyEval_RestoreThread(ts);
    throw;
  }
}

constexpr double kNsPerSecond = 1e9;

double seconds(tollgate::Nanos n) {
  return static_cast<double>(n.count()) / kNsPerSecond;
}

// timeout in seconds; None waits "for ever" (a year: the SDK adds it to a 64-bit clock).
tollgate::Nanos to_timeout(std::optional<double> timeout) {
  constexpr double kForever = 365.0 * 24 * 3600;
  double s = timeout.value_or(kForever);
  if (!(s >= 0)) throw py::value_error("timeout must be >= 0 or None");
  if (s > kForever) s = kForever;
  return tollgate::Nanos{static_cast<std::int64_t>(s * kNsPerSecond)};
}

py::str reason_name(tollgate::Reason r) {
  return py::reinterpret_borrow<py::str>(tollgate_py::reason_name(r));
}

// Forwards the SDK's telemetry to a Python sink object (tollgate._telemetry.Sink) with
// methods log(level, message), lease(...), breaker(shard, from, to).
class PyObserver final : public tollgate::Observer {
 public:
  PyObserver(py::object sink, bool leases) : sink_(std::move(sink)), leases_(leases) {}

  void detach() { attached_.store(false, std::memory_order_release); }

  void on_log(tollgate::LogLevel level, std::string_view message) noexcept override {
    call("log", [&](const py::object& s) {
      s.attr("log")(static_cast<int>(level), py::str(message.data(), message.size()));
    });
  }
  void on_lease(const tollgate::LeaseEvent& ev) noexcept override {
    if (!leases_) return;
    call("lease", [&](const py::object& s) {
      s.attr("lease")(ev.keys, ev.tokens_asked, ev.tokens_granted, ev.failed_keys,
                      seconds(ev.duration), ev.outcome == tollgate::LeaseOutcome::kOk);
    });
  }
  void on_breaker(const tollgate::BreakerEvent& ev) noexcept override {
    call("breaker", [&](const py::object& s) {
      s.attr("breaker")(ev.shard, std::string(tollgate::to_string(ev.from)),
                        std::string(tollgate::to_string(ev.to)));
    });
  }

 private:
  template <typename F>
  void call(const char* what, F&& f) noexcept {
    if (!attached_.load(std::memory_order_acquire) || !python_usable()) return;
    try {
      py::gil_scoped_acquire gil;
      try {
        f(sink_.get());
      } catch (py::error_already_set& e) {
        write_unraisable(e, what);
      }
    } catch (...) {
      // Never let anything escape into the SDK's threads.
    }
  }

  SharedObject sink_;
  bool leases_;
  std::atomic<bool> attached_{true};
};

class PyPermit;
class PyReservation;

// Sets tollgate.LimiterClosedError. Needs the GIL.
void set_closed_error() {
  static PyObject* cls = [] {
    PyObject* mod = PyImport_ImportModule("tollgate._errors");
    PyObject* c = mod != nullptr ? PyObject_GetAttrString(mod, "LimiterClosedError") : nullptr;
    Py_XDECREF(mod);
    return c;  // kept for the process's life
  }();
  if (cls == nullptr) return;  // the import failed and set its own error
  PyErr_SetString(cls, "the limiter is closed");
}

// A native Limiter owned by Python. The pointer is read and written only with the GIL held;
// calls that release the GIL keep a shared_ptr copy, and drop it before taking the GIL back.
class PyLimiter {
 public:
  PyLimiter(const std::string& config_json, bool is_path, py::object sink, bool leases) {
    tollgate::Config config = is_path ? tollgate::Config::from_json_file(config_json)
                                      : tollgate::Config::from_json(config_json);
    tollgate::Limiter::Options options;
    if (!sink.is_none()) {
      observer_ = std::make_shared<PyObserver>(std::move(sink), leases);
      options.observer = observer_;
    }
    // Without the GIL: connecting to the store logs through the observer.
    limiter_ = without_gil(
        [&] { return std::make_shared<tollgate::Limiter>(std::move(config), std::move(options)); });
  }
  PyLimiter(const PyLimiter&) = delete;
  PyLimiter& operator=(const PyLimiter&) = delete;
  ~PyLimiter() {
    if (Py_IsInitialized() != 0 && PyGILState_Check() != 0) {
      close();
    } else {
      limiter_.reset();
    }
  }

  void close() {
    std::shared_ptr<tollgate::Limiter> doomed = std::move(limiter_);
    if (!doomed) return;
    without_gil([&] { doomed.reset(); });  // joins the SDK thread; waits end with "shutdown"
    if (observer_) observer_->detach();
  }
  bool closed() const { return limiter_ == nullptr; }

  // The open native limiter, or nullptr once closed. The caller holds the GIL.
  tollgate::Limiter* raw() const { return limiter_.get(); }

  tollgate::Decision acquire(std::string_view key, std::uint64_t cost,
                             std::optional<double> timeout) {
    struct Sync {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      tollgate::Decision d;
    };
    const tollgate::Nanos t = to_timeout(timeout);
    std::weak_ptr<tollgate::Limiter> weak = shared();
    auto sync = std::make_shared<Sync>();
    const std::string owned_key(key);  // the str may go away while the GIL is released
    bool interrupted = false;
    // Not without_gil(): the GIL is taken every 100 ms to let signals (Ctrl-C) through.
    PyThreadState* ts = PyEval_SaveThread();
    try {
      tollgate::WaitId id = 0;
      if (auto lim = weak.lock()) {
        id = lim->acquire_async(owned_key, cost, t, [sync](const tollgate::Decision& d) {
          std::lock_guard lk(sync->mu);
          sync->d = d;
          sync->done = true;
          sync->cv.notify_all();
        });
      } else {
        std::lock_guard lk(sync->mu);
        sync->d = tollgate::Decision{false, tollgate::Reason::kShutdown, 0, tollgate::Nanos{0}};
        sync->done = true;
      }
      std::unique_lock lk(sync->mu);
      while (!sync->cv.wait_for(lk, 100ms, [&] { return sync->done; })) {
        lk.unlock();
        PyEval_RestoreThread(ts);
        const bool signalled = PyErr_CheckSignals() != 0;
        ts = PyEval_SaveThread();
        if (signalled) {
          interrupted = true;
          if (auto lim = weak.lock()) lim->cancel(id);
          lk.lock();
          sync->cv.wait(lk, [&] { return sync->done; });
          break;
        }
        lk.lock();
      }
      lk.unlock();
      PyEval_RestoreThread(ts);
    } catch (abi::__forced_unwind&) {
      throw;  // see without_gil()
    } catch (...) {
      PyEval_RestoreThread(ts);
      throw;
    }
    if (interrupted) throw py::error_already_set();
    return sync->d;
  }

  // Calls `callback(decision)` exactly once, with the GIL, on this thread or the SDK's.
  tollgate::WaitId acquire_async(std::string_view key, std::uint64_t cost,
                                 std::optional<double> timeout, py::object callback) {
    const tollgate::Nanos t = to_timeout(timeout);
    std::shared_ptr<tollgate::Limiter> lim = shared();
    SharedObject cb(std::move(callback));
    const std::string owned_key(key);
    return without_gil([&] {
      tollgate::WaitId id =
          lim->acquire_async(owned_key, cost, t, [cb](const tollgate::Decision& d) {
            if (!python_usable()) return;
            py::gil_scoped_acquire gil;
            try {
              cb.get()(d);
            } catch (py::error_already_set& e) {
              write_unraisable(e, "tollgate acquire_async callback");
            }
          });
      lim.reset();  // without the GIL, in case it was the last reference
      return id;
    });
  }

  bool cancel(tollgate::WaitId id) {
    std::shared_ptr<tollgate::Limiter> lim = limiter_;
    if (!lim) return false;
    return without_gil([&] {
      bool ok = lim->cancel(id);
      lim.reset();
      return ok;
    });
  }

  std::unique_ptr<PyPermit> acquire_permit(std::string_view key, std::uint32_t count);

  // Limiter::reserve: timeout None never blocks; else waits that long with the GIL released.
  std::unique_ptr<PyReservation> reserve(std::string_view key, std::uint64_t estimate,
                                         std::optional<double> timeout);
  // Limiter::reserve_async: `callback(reservation)` exactly once, with the GIL, on this thread
  // or the SDK's.
  tollgate::WaitId reserve_async(std::string_view key, std::uint64_t estimate,
                                 std::optional<double> timeout, py::object callback);

  // Swaps in another config (Limiter::update); ConfigError names the field, the running
  // config stays.
  void update(const std::string& config_json, bool is_path) {
    std::shared_ptr<tollgate::Limiter> lim = shared();
    without_gil([&] {
      if (is_path) {
        lim->update(tollgate::Config::from_json_file(config_json));
      } else {
        lim->update(std::string_view(config_json));  // a parse error is counted as refused
      }
      lim.reset();
    });
  }

  tollgate::Stats stats() {
    std::shared_ptr<tollgate::Limiter> lim = shared();
    return without_gil([&] {
      tollgate::Stats s = lim->stats();
      lim.reset();
      return s;
    });
  }

  std::string prometheus_text() {
    std::shared_ptr<tollgate::Limiter> lim = shared();
    return without_gil([&] {
      std::string text = tollgate::prometheus_text(*lim);
      lim.reset();
      return text;
    });
  }

  std::string instance_id() { return live().instance_id(); }
  tollgate::KeyRef key_ref(std::string_view key) { return live().key_ref(key); }

 private:
  [[noreturn]] static void throw_closed() {
    set_closed_error();
    throw py::error_already_set();
  }
  tollgate::Limiter& live() {
    if (!limiter_) throw_closed();
    return *limiter_;
  }
  std::shared_ptr<tollgate::Limiter> shared() {
    if (!limiter_) throw_closed();
    return limiter_;
  }

  std::shared_ptr<tollgate::Limiter> limiter_;
  std::shared_ptr<PyObserver> observer_;
};

// Drops what Python held of the SDK (a permit, a reservation) without the GIL: it may be the
// last reference to a closed limiter's internals, whose destruction joins the store's threads.
template <typename T>
void drop_without_gil(std::unique_ptr<T>& held) {
  std::unique_ptr<T> doomed = std::move(held);
  if (doomed) without_gil([&] { doomed.reset(); });
}

// Permits held by Python. Returned on release(), on leaving a `with` block, or when
// collected. Releasing may drop the last reference to a closed limiter's internals (which
// joins the store's threads), so it happens without the GIL.
class PyPermit {
 public:
  PyPermit(std::string key, tollgate::Permit p)
      : key_(std::move(key)), decision_(p.decision()), count_(p.count()) {
    if (p) permit_ = std::make_unique<tollgate::Permit>(std::move(p));
  }
  PyPermit(const PyPermit&) = delete;
  PyPermit& operator=(const PyPermit&) = delete;
  ~PyPermit() {
    if (permit_ && Py_IsInitialized() != 0 && PyGILState_Check() != 0) {
      release();
    }
  }
  void release() { drop_without_gil(permit_); }
  bool held() const { return permit_ != nullptr; }
  const tollgate::Decision& decision() const { return decision_; }
  std::uint32_t count() const { return count_; }
  const std::string& key() const { return key_; }

 private:
  std::string key_;
  std::unique_ptr<tollgate::Permit> permit_;
  tollgate::Decision decision_;
  std::uint32_t count_;
};

// Raises tollgate.RateLimitExceeded for a denied permit or reservation used in `with`.
[[noreturn]] void raise_rate_limited(const std::string& key, const tollgate::Decision& d) {
  static py::handle cls =
      py::object(py::module_::import("tollgate._errors").attr("RateLimitExceeded")).release();
  py::object exc = py::reinterpret_borrow<py::object>(cls)(key, seconds(d.retry_after),
                                                           reason_name(d.reason), d);
  PyErr_SetObject(cls.ptr(), exc.ptr());
  throw py::error_already_set();
}

std::unique_ptr<PyPermit> PyLimiter::acquire_permit(std::string_view key, std::uint32_t count) {
  return std::make_unique<PyPermit>(std::string(key), live().acquire_permit(key, count));
}

// An estimate held by Python (Limiter.reserve): settle(actual) once; leaving a `with` block or
// being collected unsettled settles it at the estimate. Settling may drop the last reference
// to a closed limiter's internals, so it happens without the GIL.
class PyReservation {
 public:
  PyReservation(std::string key, tollgate::Reservation r)
      : key_(std::move(key)), decision_(r.decision()), estimate_(r.estimate()) {
    if (r.pending()) reservation_ = std::make_unique<tollgate::Reservation>(std::move(r));
  }
  PyReservation(const PyReservation&) = delete;
  PyReservation& operator=(const PyReservation&) = delete;
  ~PyReservation() {
    if (reservation_ && Py_IsInitialized() != 0 && PyGILState_Check() != 0) release();
  }
  // Raises ValueError, changing nothing, when already settled or `actual` is above 2^53.
  py::dict settle(std::uint64_t actual) {
    if (!reservation_) throw py::value_error("the reservation holds nothing to settle");
    const tollgate::Settlement s = without_gil([&] { return reservation_->settle(actual); });
    if (!s) throw py::value_error("actual: must be <= 2^53");
    reservation_.reset();  // settled: nothing left to hold
    py::dict d;
    d["charged"] = s.charged;
    d["refunded"] = s.refunded;
    d["dropped"] = s.dropped;
    d["debt"] = s.debt;
    d["uncharged"] = s.uncharged;
    return d;
  }
  // Settles at the estimate if still pending.
  void release() { drop_without_gil(reservation_); }
  bool pending() const { return reservation_ != nullptr; }
  const tollgate::Decision& decision() const { return decision_; }
  std::uint64_t estimate() const { return estimate_; }
  const std::string& key() const { return key_; }

 private:
  std::string key_;
  std::unique_ptr<tollgate::Reservation> reservation_;
  tollgate::Decision decision_;
  std::uint64_t estimate_;
};

std::unique_ptr<PyReservation> PyLimiter::reserve(std::string_view key, std::uint64_t estimate,
                                                  std::optional<double> timeout) {
  if (!timeout) {
    return std::make_unique<PyReservation>(std::string(key), live().reserve(key, estimate));
  }
  const tollgate::Nanos t = to_timeout(timeout);
  std::shared_ptr<tollgate::Limiter> lim = shared();
  const std::string owned_key(key);
  tollgate::Reservation r = without_gil([&] {
    tollgate::Reservation got = lim->reserve(owned_key, estimate, t);
    lim.reset();
    return got;
  });
  return std::make_unique<PyReservation>(owned_key, std::move(r));
}

tollgate::WaitId PyLimiter::reserve_async(std::string_view key, std::uint64_t estimate,
                                          std::optional<double> timeout, py::object callback) {
  const tollgate::Nanos t = to_timeout(timeout);
  std::shared_ptr<tollgate::Limiter> lim = shared();
  SharedObject cb(std::move(callback));
  const std::string owned_key(key);
  return without_gil([&] {
    tollgate::WaitId id =
        lim->reserve_async(owned_key, estimate, t, [cb, owned_key](tollgate::Reservation r) {
          if (!python_usable()) return;  // settled at the estimate as r goes
          py::gil_scoped_acquire gil;
          try {
            cb.get()(std::make_unique<PyReservation>(owned_key, std::move(r)));
          } catch (py::error_already_set& e) {
            write_unraisable(e, "tollgate reserve_async callback");
          }
        });
    lim.reset();
    return id;
  });
}

// The positional and keyword arguments of a METH_FASTCALL try_acquire, into `params` in
// order (absent ones stay nullptr). False with a TypeError set.
bool bind_arguments(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                    std::initializer_list<std::pair<const char*, PyObject**>> params) noexcept {
  const auto n = static_cast<Py_ssize_t>(params.size());
  if (nargs > n) {
    PyErr_Format(PyExc_TypeError, "try_acquire() takes at most %zd argument%s", n,
                 n == 1 ? "" : "s");
    return false;
  }
  Py_ssize_t i = 0;
  for (const auto& [name, slot] : params) *slot = i < nargs ? args[i++] : nullptr;
  const Py_ssize_t keywords = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < keywords; ++k) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, k);
    PyObject** slot = nullptr;
    for (const auto& [param, where] : params) {
      if (PyUnicode_CompareWithASCIIString(name, param) == 0) slot = where;
    }
    if (slot == nullptr || *slot != nullptr) {
      PyErr_Format(PyExc_TypeError, "try_acquire() got an unexpected or repeated argument %R",
                   name);
      return false;
    }
    *slot = args[nargs + k];
  }
  return true;
}

// The cost argument of the fast try_acquire methods (absent: 1). False with a Python error set.
bool read_cost(PyObject* cost_obj, unsigned long long& cost) noexcept {
  if (cost_obj == nullptr) return true;
  if (!PyLong_Check(cost_obj)) {
    PyErr_Format(PyExc_TypeError, "cost must be an int, not %s", Py_TYPE(cost_obj)->tp_name);
    return false;
  }
  cost = PyLong_AsUnsignedLongLong(cost_obj);
  if (cost == static_cast<unsigned long long>(-1) && PyErr_Occurred() != nullptr) {
    PyErr_SetString(PyExc_ValueError, "cost must be an int >= 0 and < 2**64");
    return false;
  }
  return true;
}

// Limiter.try_acquire(key, cost=1), written against the C API: it is the call services make
// per request, and pybind11's generic dispatch cost several times the decision itself.
PyObject* fast_try_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                           PyObject* kwnames) noexcept {
  PyObject* key = nullptr;
  PyObject* cost_obj = nullptr;
  if (!bind_arguments(args, nargs, kwnames, {{"key", &key}, {"cost", &cost_obj}})) return nullptr;
  if (key == nullptr) {
    PyErr_SetString(PyExc_TypeError, "try_acquire() missing required argument 'key'");
    return nullptr;
  }
  const char* data = nullptr;
  Py_ssize_t len = 0;
  if (PyUnicode_Check(key)) {
    data = PyUnicode_AsUTF8AndSize(key, &len);
    if (data == nullptr) return nullptr;
  } else if (PyBytes_Check(key)) {
    data = PyBytes_AS_STRING(key);
    len = PyBytes_GET_SIZE(key);
  } else {
    PyErr_Format(PyExc_TypeError, "key must be str or bytes, not %s", Py_TYPE(key)->tp_name);
    return nullptr;
  }
  unsigned long long cost = 1;
  if (!read_cost(cost_obj, cost)) return nullptr;
  // The method descriptor has checked that self is a Limiter; its first (only) C++ base
  // holds the PyLimiter.
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  py::detail::value_and_holder vh = inst->get_value_and_holder(nullptr, false);
  if (!vh.holder_constructed()) {
    PyErr_SetString(PyExc_TypeError, "Limiter.__init__() was not called");
    return nullptr;
  }
  tollgate::Limiter* lim = vh.value_ptr<PyLimiter>()->raw();
  if (lim == nullptr) {
    set_closed_error();
    return nullptr;
  }
  return tollgate_py::make_decision(
      lim->try_acquire(std::string_view(data, static_cast<std::size_t>(len)), cost));
}

PyMethodDef g_try_acquire_def = {
    "try_acquire",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_try_acquire)),
    METH_FASTCALL | METH_KEYWORDS,
    "try_acquire(key, cost=1) -> Decision\n\nSpends cost tokens from the key's local lease if "
    "it can. Never blocks, never waits for the store.",
};

// Limiter.key(key): the key resolved once (a tollgate::KeyRef). Key.try_acquire(cost=1) skips
// the key's encoding, hashing and table probe; it keeps the Limiter object alive, and raises
// LimiterClosedError once the Limiter is closed, as Limiter.try_acquire does.
class PyKey {
 public:
  PyKey(py::object owner, PyLimiter* limiter, tollgate::KeyRef ref)
      : owner_(std::move(owner)), limiter_(limiter), ref_(std::move(ref)) {}
  std::string key() const { return std::string(ref_.key()); }
  bool closed() const { return limiter_->closed(); }
  const tollgate::KeyRef& ref() const { return ref_; }

 private:
  py::object owner_;  // the Python Limiter: limiter_ lives as long as this Key
  PyLimiter* limiter_;
  tollgate::KeyRef ref_;
};

// Key.try_acquire(cost=1), against the C++ API directly, for the reason fast_try_acquire is.
PyObject* fast_key_try_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                               PyObject* kwnames) noexcept {
  PyObject* cost_obj = nullptr;
  if (!bind_arguments(args, nargs, kwnames, {{"cost", &cost_obj}})) return nullptr;
  unsigned long long cost = 1;
  if (!read_cost(cost_obj, cost)) return nullptr;
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  py::detail::value_and_holder vh = inst->get_value_and_holder(nullptr, false);
  if (!vh.holder_constructed()) {
    PyErr_SetString(PyExc_TypeError, "Key objects come from Limiter.key()");
    return nullptr;
  }
  const PyKey* k = vh.value_ptr<PyKey>();
  if (k->closed()) {
    set_closed_error();
    return nullptr;
  }
  return tollgate_py::make_decision(k->ref().try_acquire(cost));
}

PyMethodDef g_key_try_acquire_def = {
    "try_acquire",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_key_try_acquire)),
    METH_FASTCALL | METH_KEYWORDS,
    "try_acquire(cost=1) -> Decision\n\nLimiter.try_acquire(key, cost) without encoding, "
    "hashing or looking up the key again. Never blocks.",
};

py::dict stats_to_dict(const tollgate::Stats& s) {
  py::dict denied;
  for (int r = 0; r < tollgate::kReasonCount; ++r) {
    denied[reason_name(static_cast<tollgate::Reason>(r))] = s.denied[static_cast<std::size_t>(r)];
  }
  py::list breakers;
  for (auto b : s.breakers) breakers.append(py::str(std::string(tollgate::to_string(b))));
  py::dict d;
#define TOLLGATE_STATS_ITEM(name, since, help) d[#name] = s.name;
  TOLLGATE_STATS_COUNTERS(TOLLGATE_STATS_ITEM)
#undef TOLLGATE_STATS_ITEM
  d["denied"] = denied;
  d["denied_total"] = s.denied_total();
  d["breakers"] = breakers;
  // By tollgate.policy value, "other" first (docs/observability.md, "Decisions per policy").
  py::list policies;
  for (const tollgate::PolicyStats& p : s.policies) {
    py::dict by_reason;
    for (int r = 1; r < tollgate::kReasonCount; ++r)
      by_reason[reason_name(static_cast<tollgate::Reason>(r))] =
          p.denied[static_cast<std::size_t>(r)];
    py::dict policy;
    policy["name"] = p.name;
#define TOLLGATE_STATS_ITEM(name, since, help) policy[#name] = p.name;
    TOLLGATE_STATS_DECISIONS(TOLLGATE_STATS_ITEM)
#undef TOLLGATE_STATS_ITEM
    policy["denied"] = by_reason;
    policies.append(policy);
  }
  d["policies"] = policies;
  return d;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "Private native core of the tollgate package; use `tollgate` instead.";
  m.attr("version") = std::string(tollgate::version());
  m.attr("compiled_version") = TOLLGATE_VERSION_STRING;

  tollgate_py::init_decision_type(m);
  py::list reasons;
  for (int r = 0; r < tollgate::kReasonCount; ++r) {
    reasons.append(reason_name(static_cast<tollgate::Reason>(r)));
  }
  m.attr("REASONS") = py::tuple(reasons);

  // ConfigError -> tollgate.ConfigError (a ValueError) carrying field and reason.
  py::object errors = py::module_::import("tollgate._errors");
  static py::handle config_error = py::object(errors.attr("ConfigError")).release();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tollgate::ConfigError& e) {
      py::object exc =
          py::reinterpret_borrow<py::object>(config_error)(e.what(), e.field(), e.reason());
      PyErr_SetObject(config_error.ptr(), exc.ptr());
    }
  });

  // What a Permit and a Reservation share: the decision, the key, release(), and `with`
  // running the body only when allowed (RateLimitExceeded otherwise), releasing on exit.
  auto held = [](auto& cls) {
    using T = typename std::remove_reference_t<decltype(cls)>::type;
    cls.def_property_readonly("allowed", [](const T& h) { return h.decision().allowed; })
        .def_property_readonly("decision", &T::decision)
        .def_property_readonly("key", &T::key)
        .def("release", &T::release)
        .def("__enter__",
             [](py::object self) {
               const auto& h = self.cast<const T&>();
               if (!h.decision().allowed) raise_rate_limited(h.key(), h.decision());
               return self;
             })
        .def("__exit__",
             [](T& h, const py::args&) {
               h.release();
               return false;
             })
        .def("__bool__", [](const T& h) { return h.decision().allowed; });
  };
  // `with limiter.permit(key, n):` runs the body only with the permits held.
  py::class_<PyPermit> permit(m, "Permit");
  held(permit);
  permit.def_property_readonly("count", &PyPermit::count)
      .def_property_readonly("held", &PyPermit::held);
  // `with limiter.reserve(key, estimate) as r:` runs the body only with the estimate held;
  // an unsettled one is settled at the estimate on exit.
  py::class_<PyReservation> reservation(m, "Reservation");
  held(reservation);
  reservation.def_property_readonly("estimate", &PyReservation::estimate)
      .def_property_readonly("pending", &PyReservation::pending)
      .def("settle", &PyReservation::settle, py::arg("actual"));

  py::class_<PyLimiter> limiter(m, "Limiter");
  limiter
      .def(py::init<const std::string&, bool, py::object, bool>(), py::arg("config"),
           py::arg("is_path"), py::arg("sink"), py::arg("leases"))
      .def("acquire", &PyLimiter::acquire, py::arg("key"), py::arg("cost") = 1,
           py::arg("timeout") = py::none())
      .def("_acquire_async", &PyLimiter::acquire_async, py::arg("key"), py::arg("cost"),
           py::arg("timeout"), py::arg("callback"))
      .def("cancel", &PyLimiter::cancel, py::arg("wait_id"))
      .def("acquire_permit", &PyLimiter::acquire_permit, py::arg("key"), py::arg("count") = 1)
      .def("reserve", &PyLimiter::reserve, py::arg("key"), py::arg("estimate"),
           py::arg("timeout") = py::none())
      .def("_reserve_async", &PyLimiter::reserve_async, py::arg("key"), py::arg("estimate"),
           py::arg("timeout"), py::arg("callback"))
      .def("stats", [](PyLimiter& l) { return stats_to_dict(l.stats()); })
      .def("_update", &PyLimiter::update, py::arg("config"), py::arg("is_path"))
      .def("_prometheus_text", &PyLimiter::prometheus_text)
      .def_property_readonly("instance_id", &PyLimiter::instance_id)
      .def_property_readonly("closed", &PyLimiter::closed)
      .def("close", &PyLimiter::close);
  PyObject* try_acquire =
      PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(limiter.ptr()), &g_try_acquire_def);
  if (try_acquire == nullptr) throw py::error_already_set();
  limiter.attr("try_acquire") = py::reinterpret_steal<py::object>(try_acquire);

  py::class_<PyKey> key(m, "Key");
  key.def_property_readonly("key", &PyKey::key)
      .def_property_readonly("closed", &PyKey::closed)
      .def("__repr__", [](const PyKey& k) {
        return "Key(" + py::repr(py::str(k.key())).cast<std::string>() + ")";
      });
  PyObject* key_try_acquire =
      PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(key.ptr()), &g_key_try_acquire_def);
  if (key_try_acquire == nullptr) throw py::error_already_set();
  key.attr("try_acquire") = py::reinterpret_steal<py::object>(key_try_acquire);
  limiter.def(
      "key",
      [](py::object self, std::string_view k) {
        PyLimiter& l = self.cast<PyLimiter&>();
        return std::make_unique<PyKey>(self, &l, l.key_ref(k));
      },
      py::arg("key"));

  m.def("_shutdown", [] { g_interpreter_exiting.store(true, std::memory_order_release); });
}
