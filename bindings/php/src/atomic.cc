// Shmkit\Atomic: shmkit::AtomicCounter with Swoole\Atomic's methods.
//
//   $hits = new Shmkit\Atomic();            // anonymous: shared through fork
//   $hits = new Shmkit\Atomic(0, 'hits');   // named: created or attached
//   $hits->add(1);
//
// Values are 64-bit (Swoole\Atomic is 32-bit unsigned, Swoole\Atomic\Long
// 64-bit without wait/wakeup); the range is +-2^62 and leaving it throws
// OutOfRangeException instead of wrapping. wait()/wakeup() keep Swoole's
// meaning for one waiter: wakeup() turns 0 into 1 and wakes; wait() turns 1
// back into 0, or sleeps (on a shared futex, no polling) until a wakeup
// comes. wakeup($n) sets n (Swoole sets 1 and wakes n, after which n - 1 of
// the woken return false): here exactly n waiters return true.
#include <sys/ipc.h>
#include <sys/shm.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit_php.h"

namespace shmkit::php {
namespace {

zend_class_entry* atomic_ce = nullptr;
zend_object_handlers atomic_handlers;

struct NamedAtomic {
  std::shared_ptr<AtomicCounter> counter;
  int shmid = -1;
};
absl::flat_hash_map<key_t, NamedAtomic>* named_atomics = nullptr;

struct AtomicState {
  std::shared_ptr<AtomicCounter> counter;
  std::optional<IpcKey> key;
};

struct AtomicObject {
  AtomicState* state;
  zend_object std;
};

AtomicState& StateOf(zval* self) { return php::StateOf<AtomicObject>(self); }

AtomicCounter* Counter(zval* self) {
  AtomicState& s = StateOf(self);
  if (s.counter == nullptr) {
    ThrowStatus(absl::FailedPreconditionError(
        "the atomic is not open (it was destroyed)"));
    return nullptr;
  }
  return s.counter.get();
}

absl::StatusOr<std::shared_ptr<AtomicCounter>> OpenNamed(IpcKey key,
                                                         int64_t initial) {
  if (named_atomics == nullptr) {
    named_atomics = new absl::flat_hash_map<key_t, NamedAtomic>();
  }
  auto it = named_atomics->find(key.value());
  if (it != named_atomics->end()) {
    if (shmget(key.value(), 0, 0) == it->second.shmid) {
      return it->second.counter;
    }
    named_atomics->erase(it);
  }
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    CounterOptions options;
    options.key = key;
    options.initial_value = initial;
    absl::StatusOr<AtomicCounter> c = AtomicCounter::Create(options);
    if (!c.ok() && absl::IsAlreadyExists(c.status())) {
      c = AtomicCounter::Attach(key);
      if (!c.ok() && absl::IsNotFound(c.status())) {
        last = c.status();
        continue;
      }
    }
    if (!c.ok()) return c.status();
    auto shared = std::make_shared<AtomicCounter>(*std::move(c));
    (*named_atomics)[key.value()] =
        NamedAtomic{shared, shared->segment().id()};
    return shared;
  }
  return last;
}

// Returns the value or throws; for StatusOr<int64_t> results.
#define SHMKIT_RETURN_LONG_OR_THROW(expr)   \
  do {                                      \
    absl::StatusOr<int64_t> v_ = (expr);    \
    if (!v_.ok()) {                         \
      ThrowStatus(v_.status());             \
      RETURN_THROWS();                      \
    }                                       \
    RETURN_LONG(static_cast<zend_long>(*v_)); \
  } while (0)

// A timeout argument in seconds (negative: no limit) as a Duration; false
// after throwing for a non-finite one.
bool TimeoutArg(double timeout, absl::Duration* out) {
  absl::StatusOr<absl::Duration> d = SecondsToDuration(timeout, "timeout");
  if (!d.ok()) return ThrowStatus(d.status()), false;
  *out = timeout < 0 ? absl::InfiniteDuration() : *d;
  return true;
}

PHP_METHOD(ShmkitAtomic, __construct) {
  zend_long value = 0;
  zend_string* name = nullptr;
  ZEND_PARSE_PARAMETERS_START(0, 2)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(value)
  Z_PARAM_STR_OR_NULL(name)
  ZEND_PARSE_PARAMETERS_END();
  AtomicState& s = StateOf(ZEND_THIS);
  if (s.counter != nullptr) {
    zend_throw_error(nullptr, "Shmkit\\Atomic is already open");
    RETURN_THROWS();
  }
  if (absl::Status st = CheckCounterRange(value, "initial value"); !st.ok()) {
    ThrowStatus(st);
    RETURN_THROWS();
  }
  if (name == nullptr) {
    CounterOptions options;
    options.initial_value = value;
    absl::StatusOr<AtomicCounter> c = AtomicCounter::Create(options);
    if (!c.ok()) {
      ThrowStatus(c.status());
      RETURN_THROWS();
    }
    s.counter = std::make_shared<AtomicCounter>(*std::move(c));
    return;
  }
  absl::StatusOr<IpcKey> key = KeyForName(View(name));
  if (!key.ok()) {
    ThrowStatus(key.status());
    RETURN_THROWS();
  }
  absl::StatusOr<std::shared_ptr<AtomicCounter>> c = OpenNamed(*key, value);
  if (!c.ok()) {
    ThrowStatus(c.status());
    RETURN_THROWS();
  }
  s.counter = *std::move(c);
  s.key = *key;
}

void AddOrSub(INTERNAL_FUNCTION_PARAMETERS, bool sub) {
  zend_long by = 1;
  ZEND_PARSE_PARAMETERS_START(0, 1)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(by)
  ZEND_PARSE_PARAMETERS_END();
  AtomicCounter* c = Counter(ZEND_THIS);
  if (c == nullptr) RETURN_THROWS();
  SHMKIT_RETURN_LONG_OR_THROW(sub ? c->Sub(by) : c->Add(by));
}

PHP_METHOD(ShmkitAtomic, add) { AddOrSub(INTERNAL_FUNCTION_PARAM_PASSTHRU, false); }
PHP_METHOD(ShmkitAtomic, sub) { AddOrSub(INTERNAL_FUNCTION_PARAM_PASSTHRU, true); }

PHP_METHOD(ShmkitAtomic, get) {
  ZEND_PARSE_PARAMETERS_NONE();
  AtomicCounter* c = Counter(ZEND_THIS);
  if (c == nullptr) RETURN_THROWS();
  SHMKIT_RETURN_LONG_OR_THROW(c->Get());
}

PHP_METHOD(ShmkitAtomic, set) {
  zend_long value;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_LONG(value)
  ZEND_PARSE_PARAMETERS_END();
  AtomicCounter* c = Counter(ZEND_THIS);
  if (c == nullptr) RETURN_THROWS();
  if (absl::Status st = c->Set(value); !st.ok()) {
    ThrowStatus(st);
    RETURN_THROWS();
  }
}

PHP_METHOD(ShmkitAtomic, cmpset) {
  zend_long expected;
  zend_long desired;
  ZEND_PARSE_PARAMETERS_START(2, 2)
  Z_PARAM_LONG(expected)
  Z_PARAM_LONG(desired)
  ZEND_PARSE_PARAMETERS_END();
  AtomicCounter* c = Counter(ZEND_THIS);
  if (c == nullptr) RETURN_THROWS();
  absl::StatusOr<bool> done = c->CompareAndSet(expected, desired);
  if (!done.ok()) {
    ThrowStatus(done.status());
    RETURN_THROWS();
  }
  RETURN_BOOL(*done);
}

// wait(float $timeout = 1.0): true once it took one wakeup (turned a
// positive value v into v - 1); false after `timeout` seconds (negative: no
// limit), or at once when the value is negative. Waits on a shared futex.
PHP_METHOD(ShmkitAtomic, wait) {
  double timeout = 1.0;
  ZEND_PARSE_PARAMETERS_START(0, 1)
  Z_PARAM_OPTIONAL
  Z_PARAM_DOUBLE(timeout)
  ZEND_PARSE_PARAMETERS_END();
  AtomicCounter* c = Counter(ZEND_THIS);
  absl::Duration limit;
  if (c == nullptr || !TimeoutArg(timeout, &limit)) RETURN_THROWS();
  const bool forever = limit == absl::InfiniteDuration();
  const absl::Time deadline = forever ? absl::InfiniteFuture() : absl::Now() + limit;
  absl::StatusOr<int64_t> v = c->Get();
  for (;;) {
    if (!v.ok()) {
      if (absl::IsDeadlineExceeded(v.status())) RETURN_FALSE;
      ThrowStatus(v.status());
      RETURN_THROWS();
    }
    if (*v < 0) RETURN_FALSE;
    if (*v > 0) {
      absl::StatusOr<bool> took = c->CompareAndSet(*v, *v - 1);
      if (!took.ok()) {
        ThrowStatus(took.status());
        RETURN_THROWS();
      }
      if (*took) RETURN_TRUE;
      v = c->Get();  // another waiter was faster; look again
      continue;
    }
    v = c->WaitUntil([](int64_t x) { return x != 0; },
                     forever ? absl::InfiniteDuration()
                             : std::max(deadline - absl::Now(),
                                        absl::ZeroDuration()));
  }
}

// wakeup(int $count = 1): when the value is 0, sets it to `count` and wakes
// the waiters, so that `count` of them return true; otherwise (a wakeup is
// still pending) changes nothing. true.
PHP_METHOD(ShmkitAtomic, wakeup) {
  zend_long count = 1;
  ZEND_PARSE_PARAMETERS_START(0, 1)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(count)
  ZEND_PARSE_PARAMETERS_END();
  if (count < 1) {
    zend_argument_value_error(1, "must be at least 1");
    RETURN_THROWS();
  }
  AtomicCounter* c = Counter(ZEND_THIS);
  if (c == nullptr) RETURN_THROWS();
  absl::StatusOr<bool> set = c->CompareAndSet(0, count);
  if (!set.ok()) {
    ThrowStatus(set.status());
    RETURN_THROWS();
  }
  if (*set) {
    if (absl::Status st = c->Wake(); !st.ok()) {
      ThrowStatus(st);
      RETURN_THROWS();
    }
  }
  RETURN_TRUE;
}

// waitUntil(int $value, float $timeout = 1.0): shmkit's addition: blocks
// until the counter is at least `value`; returns the value seen, or false
// after `timeout` seconds (negative: no limit).
PHP_METHOD(ShmkitAtomic, waitUntil) {
  zend_long threshold;
  double timeout = 1.0;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_LONG(threshold)
  Z_PARAM_OPTIONAL
  Z_PARAM_DOUBLE(timeout)
  ZEND_PARSE_PARAMETERS_END();
  AtomicCounter* c = Counter(ZEND_THIS);
  absl::Duration limit;
  if (c == nullptr || !TimeoutArg(timeout, &limit)) RETURN_THROWS();
  absl::StatusOr<int64_t> v = c->WaitUntilAtLeast(threshold, limit);
  if (!v.ok()) {
    if (absl::IsDeadlineExceeded(v.status())) RETURN_FALSE;
    ThrowStatus(v.status());
    RETURN_THROWS();
  }
  RETURN_LONG(static_cast<zend_long>(*v));
}

// destroy(): removes a named atomic (processes that have it keep using it
// until they drop it); for an anonymous one, drops this handle.
PHP_METHOD(ShmkitAtomic, destroy) {
  ZEND_PARSE_PARAMETERS_NONE();
  AtomicState& s = StateOf(ZEND_THIS);
  AtomicCounter* c = Counter(ZEND_THIS);
  if (c == nullptr) RETURN_THROWS();
  if (s.key.has_value()) {
    absl::Status st = c->Remove();
    if (named_atomics != nullptr) named_atomics->erase(s.key->value());
    if (!st.ok() && !absl::IsNotFound(st)) {
      ThrowStatus(st);
      RETURN_THROWS();
    }
  }
  s.counter.reset();
  RETURN_TRUE;
}

ZEND_BEGIN_ARG_INFO_EX(arginfo_construct, 0, 0, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, value, IS_LONG, 0, "0")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, name, IS_STRING, 1, "null")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_add, 0, 0, IS_LONG, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, value, IS_LONG, 0, "1")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_get, 0, 0, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_set, 0, 1, IS_VOID, 0)
ZEND_ARG_TYPE_INFO(0, value, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_cmpset, 0, 2, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, cmp_value, IS_LONG, 0)
ZEND_ARG_TYPE_INFO(0, new_value, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_wait, 0, 0, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, timeout, IS_DOUBLE, 0, "1.0")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_wakeup, 0, 0, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, count, IS_LONG, 0, "1")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_MASK_EX(arginfo_waitUntil, 0, 1,
                                        MAY_BE_LONG | MAY_BE_FALSE)
ZEND_ARG_TYPE_INFO(0, value, IS_LONG, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, timeout, IS_DOUBLE, 0, "1.0")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_destroy, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()

const zend_function_entry atomic_methods[] = {
    PHP_ME(ShmkitAtomic, __construct, arginfo_construct, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitAtomic, add, arginfo_add, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitAtomic, sub, arginfo_add, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitAtomic, get, arginfo_get, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitAtomic, set, arginfo_set, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitAtomic, cmpset, arginfo_cmpset, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitAtomic, wait, arginfo_wait, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitAtomic, wakeup, arginfo_wakeup, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitAtomic, waitUntil, arginfo_waitUntil, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitAtomic, destroy, arginfo_destroy, ZEND_ACC_PUBLIC)
    PHP_FE_END};

}  // namespace

void RegisterAtomic() {
  zend_class_entry ce;
  INIT_NS_CLASS_ENTRY(ce, "Shmkit", "Atomic", atomic_methods);
  atomic_ce = zend_register_internal_class(&ce);
  SetUpObjects<AtomicObject>(atomic_ce, &atomic_handlers);
}

void ReleaseNamedAtomics() {
  delete named_atomics;
  named_atomics = nullptr;
}

}  // namespace shmkit::php
