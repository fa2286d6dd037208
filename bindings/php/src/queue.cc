// Shmkit\Queue: any shmkit queue backend, opened from a spec string, so a
// PHP producer and a C++ consumer (or the `shmkit` tool) share one queue.
//
//   $q = new Shmkit\Queue('sysv:key=0x5eed');
//   $q->send('resize 42.jpg');                // type 1, blocks while full
//   $job = $q->receive(0, 1.0);               // any type, 1 s; false if none
//
// A full queue (send) or an empty one (receive) is `false` once the timeout
// runs out (null: wait forever; 0: do not wait); everything else that goes
// wrong throws. Typed receive follows msgrcv(2): 0 any, > 0 that type, < 0
// the lowest type <= |type| (backends without typed receive accept 0 only).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit_php.h"

namespace shmkit::php {
namespace {

constexpr zend_long kRoleBoth = 0;
constexpr zend_long kRoleSender = 1;
constexpr zend_long kRoleReceiver = 2;

zend_class_entry* queue_ce = nullptr;
zend_object_handlers queue_handlers;

struct QueueState {
  std::unique_ptr<Queue> queue;
  Message message;  // reused by receive()
};

struct QueueObject {
  QueueState* state;
  zend_object std;
};

QueueState& StateOf(zval* self) { return php::StateOf<QueueObject>(self); }

Queue* QueueOf(zval* self) {
  QueueState& s = StateOf(self);
  if (s.queue == nullptr) {
    ThrowStatus(absl::FailedPreconditionError("the queue is not open"));
    return nullptr;
  }
  return s.queue.get();
}

// null: forever; 0 or less: no wait; else that many seconds.
bool WaitFor(double timeout, bool timeout_null, WaitMode* out) {
  if (timeout_null) {
    *out = WaitMode::Forever();
    return true;
  }
  absl::StatusOr<absl::Duration> d = SecondsToDuration(timeout, "timeout");
  if (!d.ok()) return ThrowStatus(d.status()), false;
  *out = timeout <= 0 ? WaitMode::None() : WaitMode::For(*d);
  return true;
}

PHP_METHOD(ShmkitQueue, __construct) {
  zend_string* spec;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_STR(spec)
  ZEND_PARSE_PARAMETERS_END();
  QueueState& s = StateOf(ZEND_THIS);
  if (s.queue != nullptr) {
    zend_throw_error(nullptr, "Shmkit\\Queue is already open");
    RETURN_THROWS();
  }
  absl::StatusOr<std::unique_ptr<Queue>> q = OpenQueue(View(spec));
  if (!q.ok()) {
    ThrowStatus(q.status());
    RETURN_THROWS();
  }
  s.queue = *std::move(q);
}

PHP_METHOD(ShmkitQueue, send) {
  zend_string* data;
  zend_long type = kDefaultMessageType;
  double timeout = 0;
  bool timeout_null = true;
  ZEND_PARSE_PARAMETERS_START(1, 3)
  Z_PARAM_STR(data)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(type)
  Z_PARAM_DOUBLE_OR_NULL(timeout, timeout_null)
  ZEND_PARSE_PARAMETERS_END();
  Queue* q = QueueOf(ZEND_THIS);
  if (q == nullptr) RETURN_THROWS();
  WaitMode wait = WaitMode::Forever();
  if (!WaitFor(timeout, timeout_null, &wait)) RETURN_THROWS();
  absl::Status st = q->SendWith(View(data), type, wait);
  if (st.ok()) RETURN_TRUE;
  if (absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) RETURN_FALSE;
  ThrowStatus(st);
  RETURN_THROWS();
}

// Receives into s.message; 1 received, 0 nothing in time, -1 thrown.
int ReceiveInto(INTERNAL_FUNCTION_PARAMETERS, QueueState** state) {
  zend_long type = 0;
  double timeout = 0;
  bool timeout_null = true;
  zend_long max_bytes = 0;
  ZEND_PARSE_PARAMETERS_START(0, 3)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(type)
  Z_PARAM_DOUBLE_OR_NULL(timeout, timeout_null)
  Z_PARAM_LONG(max_bytes)
  ZEND_PARSE_PARAMETERS_END_EX(return -1);
  Queue* q = QueueOf(ZEND_THIS);
  if (q == nullptr) return -1;
  if (max_bytes < 0) {
    zend_argument_value_error(3, "must be >= 0 (0: the largest message the "
                                 "queue carries)");
    return -1;
  }
  WaitMode wait = WaitMode::Forever();
  if (!WaitFor(timeout, timeout_null, &wait)) return -1;
  absl::StatusOr<TypeFilter> filter = TypeFilter::FromSysV(type, false);
  if (!filter.ok()) return ThrowStatus(filter.status()), -1;
  QueueState& s = StateOf(ZEND_THIS);
  const size_t max = max_bytes == 0 ? q->Capabilities().max_message_bytes
                                    : static_cast<size_t>(max_bytes);
  absl::Status st = q->ReceiveInto(s.message, max, wait, *filter);
  if (st.ok()) {
    *state = &s;
    return 1;
  }
  if (absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) return 0;
  ThrowStatus(st);
  return -1;
}

PHP_METHOD(ShmkitQueue, receive) {
  QueueState* s = nullptr;
  const int got = ReceiveInto(INTERNAL_FUNCTION_PARAM_PASSTHRU, &s);
  if (got < 0) RETURN_THROWS();
  if (got == 0) RETURN_FALSE;
  RETURN_STRINGL(s->message.data.data(), s->message.data.size());
}

PHP_METHOD(ShmkitQueue, receiveMessage) {
  QueueState* s = nullptr;
  const int got = ReceiveInto(INTERNAL_FUNCTION_PARAM_PASSTHRU, &s);
  if (got < 0) RETURN_THROWS();
  if (got == 0) RETURN_FALSE;
  array_init_size(return_value, 2);
  add_assoc_long(return_value, "type", static_cast<zend_long>(s->message.type));
  add_assoc_stringl(return_value, "data", s->message.data.data(),
                    s->message.data.size());
}

PHP_METHOD(ShmkitQueue, setRole) {
  zend_long role;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_LONG(role)
  ZEND_PARSE_PARAMETERS_END();
  Queue* q = QueueOf(ZEND_THIS);
  if (q == nullptr) RETURN_THROWS();
  QueueRole r;
  switch (role) {
    case kRoleBoth: r = QueueRole::kSendAndReceive; break;
    case kRoleSender: r = QueueRole::kSender; break;
    case kRoleReceiver: r = QueueRole::kReceiver; break;
    default:
      zend_argument_value_error(1, "must be Shmkit\\Queue::ROLE_BOTH, "
                                   "ROLE_SENDER or ROLE_RECEIVER");
      RETURN_THROWS();
  }
  if (absl::Status st = q->SetRole(r); !st.ok()) {
    ThrowStatus(st);
    RETURN_THROWS();
  }
}

PHP_METHOD(ShmkitQueue, close) {
  ZEND_PARSE_PARAMETERS_NONE();
  QueueState& s = StateOf(ZEND_THIS);
  if (s.queue == nullptr) RETURN_TRUE;
  absl::Status st = s.queue->Close();
  s.queue.reset();
  if (!st.ok()) {
    ThrowStatus(st);
    RETURN_THROWS();
  }
  RETURN_TRUE;
}

PHP_METHOD(ShmkitQueue, remove) {
  ZEND_PARSE_PARAMETERS_NONE();
  Queue* q = QueueOf(ZEND_THIS);
  if (q == nullptr) RETURN_THROWS();
  if (absl::Status st = q->Remove(); !st.ok()) {
    ThrowStatus(st);
    RETURN_THROWS();
  }
  RETURN_TRUE;
}

PHP_METHOD(ShmkitQueue, stats) {
  ZEND_PARSE_PARAMETERS_NONE();
  Queue* q = QueueOf(ZEND_THIS);
  if (q == nullptr) RETURN_THROWS();
  absl::StatusOr<QueueStats> st = q->Stats();
  if (!st.ok()) {
    ThrowStatus(st.status());
    RETURN_THROWS();
  }
  array_init(return_value);
  add_assoc_stringl(return_value, "backend", st->backend.data(),
                    st->backend.size());
  auto opt = [&](const char* name, const std::optional<uint64_t>& v) {
    if (v.has_value()) {
      add_assoc_long(return_value, name, static_cast<zend_long>(*v));
    } else {
      add_assoc_null(return_value, name);
    }
  };
  opt("messages", st->messages);
  opt("bytes", st->bytes);
  opt("capacity_messages", st->capacity_messages);
  opt("capacity_bytes", st->capacity_bytes);
  add_assoc_long(return_value, "sent", static_cast<zend_long>(st->sent));
  add_assoc_long(return_value, "received",
                 static_cast<zend_long>(st->received));
}

PHP_METHOD(ShmkitQueue, capabilities) {
  ZEND_PARSE_PARAMETERS_NONE();
  Queue* q = QueueOf(ZEND_THIS);
  if (q == nullptr) RETURN_THROWS();
  const QueueCapabilities& c = q->Capabilities();
  array_init(return_value);
  add_assoc_stringl(return_value, "backend", c.backend.data(),
                    c.backend.size());
  add_assoc_long(return_value, "max_message_bytes",
                 static_cast<zend_long>(c.max_message_bytes));
  add_assoc_bool(return_value, "typed_receive", c.typed_receive);
  add_assoc_bool(return_value, "bidirectional", c.bidirectional);
  add_assoc_bool(return_value, "attachable", c.attachable);
  add_assoc_bool(return_value, "shared_channel", c.shared_channel);
}

ZEND_BEGIN_ARG_INFO_EX(arginfo_construct, 0, 0, 1)
ZEND_ARG_TYPE_INFO(0, spec, IS_STRING, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_send, 0, 1, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, data, IS_STRING, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, type, IS_LONG, 0, "1")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, timeout, IS_DOUBLE, 1, "null")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_MASK_EX(arginfo_receive, 0, 0,
                                        MAY_BE_STRING | MAY_BE_FALSE)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, type, IS_LONG, 0, "0")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, timeout, IS_DOUBLE, 1, "null")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, max_bytes, IS_LONG, 0, "0")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_MASK_EX(arginfo_receiveMessage, 0, 0,
                                        MAY_BE_ARRAY | MAY_BE_FALSE)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, type, IS_LONG, 0, "0")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, timeout, IS_DOUBLE, 1, "null")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, max_bytes, IS_LONG, 0, "0")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_setRole, 0, 1, IS_VOID, 0)
ZEND_ARG_TYPE_INFO(0, role, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_bool, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_array, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

const zend_function_entry queue_methods[] = {
    PHP_ME(ShmkitQueue, __construct, arginfo_construct, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitQueue, send, arginfo_send, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitQueue, receive, arginfo_receive, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitQueue, receiveMessage, arginfo_receiveMessage, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitQueue, setRole, arginfo_setRole, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitQueue, close, arginfo_bool, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitQueue, remove, arginfo_bool, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitQueue, stats, arginfo_array, ZEND_ACC_PUBLIC)
    PHP_ME(ShmkitQueue, capabilities, arginfo_array, ZEND_ACC_PUBLIC)
    PHP_FE_END};

}  // namespace

void RegisterQueue() {
  zend_class_entry ce;
  INIT_NS_CLASS_ENTRY(ce, "Shmkit", "Queue", queue_methods);
  queue_ce = zend_register_internal_class(&ce);
  SetUpObjects<QueueObject>(queue_ce, &queue_handlers);
  zend_declare_class_constant_long(queue_ce, "ROLE_BOTH",
                                   sizeof("ROLE_BOTH") - 1, kRoleBoth);
  zend_declare_class_constant_long(queue_ce, "ROLE_SENDER",
                                   sizeof("ROLE_SENDER") - 1, kRoleSender);
  zend_declare_class_constant_long(queue_ce, "ROLE_RECEIVER",
                                   sizeof("ROLE_RECEIVER") - 1, kRoleReceiver);
}

}  // namespace shmkit::php
