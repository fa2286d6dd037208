// Shmkit\Exception and its subclasses: one per absl::StatusCode, so PHP code
// catches what it can act on (DESIGN.md section 7) and reads the absl code
// from getCode() and its name from getStatus().
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "shmkit_php.h"

namespace shmkit::php {
namespace {

zend_class_entry* exception_ce = nullptr;

struct Subclass {
  absl::StatusCode code;
  const char* name;
  zend_class_entry* ce;
};
Subclass subclasses[] = {
    {absl::StatusCode::kInvalidArgument, "InvalidArgumentException", nullptr},
    {absl::StatusCode::kNotFound, "NotFoundException", nullptr},
    {absl::StatusCode::kAlreadyExists, "AlreadyExistsException", nullptr},
    {absl::StatusCode::kResourceExhausted, "ResourceExhaustedException",
     nullptr},
    {absl::StatusCode::kFailedPrecondition, "FailedPreconditionException",
     nullptr},
    {absl::StatusCode::kAborted, "AbortedException", nullptr},
    {absl::StatusCode::kOutOfRange, "OutOfRangeException", nullptr},
    {absl::StatusCode::kUnavailable, "UnavailableException", nullptr},
    {absl::StatusCode::kDeadlineExceeded, "DeadlineExceededException",
     nullptr},
    {absl::StatusCode::kDataLoss, "DataLossException", nullptr},
    {absl::StatusCode::kPermissionDenied, "PermissionDeniedException",
     nullptr},
    // Everything else (kInternal, kUnknown, kUnimplemented, ...).
    {absl::StatusCode::kInternal, "InternalException", nullptr},
};

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_getStatus, 0, 0, IS_STRING, 0)
ZEND_END_ARG_INFO()

PHP_METHOD(ShmkitException, getStatus) {
  ZEND_PARSE_PARAMETERS_NONE();
  zval rv;
  zval* code = zend_read_property(exception_ce, Z_OBJ_P(ZEND_THIS), "code",
                                  sizeof("code") - 1, 1, &rv);
  const zend_long value = Z_TYPE_P(code) == IS_LONG ? Z_LVAL_P(code) : 2;
  const std::string name =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(value));
  RETURN_STRINGL(name.data(), name.size());
}

const zend_function_entry exception_methods[] = {
    PHP_ME(ShmkitException, getStatus, arginfo_getStatus, ZEND_ACC_PUBLIC)
        PHP_FE_END};

}  // namespace

void RegisterErrors() {
  zend_class_entry ce;
  INIT_NS_CLASS_ENTRY(ce, "Shmkit", "Exception", exception_methods);
  exception_ce = zend_register_internal_class_ex(&ce, spl_ce_RuntimeException);
  for (Subclass& sub : subclasses) {
    zend_class_entry sce;
    const std::string full = absl::StrCat("Shmkit\\", sub.name);
    INIT_CLASS_ENTRY_EX(sce, full.data(), full.size(), nullptr);
    sub.ce = zend_register_internal_class_ex(&sce, exception_ce);
  }
}

zend_class_entry* ExceptionClass(absl::StatusCode code) {
  for (const Subclass& sub : subclasses) {
    if (sub.code == code) return sub.ce;
  }
  return subclasses[sizeof(subclasses) / sizeof(subclasses[0]) - 1].ce;
}

void ThrowStatus(const absl::Status& status) {
  const std::string message(status.message());
  zend_throw_exception(ExceptionClass(status.code()), message.c_str(),
                       static_cast<zend_long>(status.code()));
}

absl::StatusOr<IpcKey> KeyForName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("the name of a shared object is empty");
  }
  if (absl::StatusOr<IpcKey> key = IpcKey::Parse(name); key.ok()) {
    if (key->is_private()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "name \"", name,
          "\" is the private key; named objects need a key other processes "
          "can find"));
    }
    return *key;
  }
  // FNV-1a, 32 bits: fixed, so every process derives the same key.
  uint32_t h = 2166136261u;
  auto mix = [&h](absl::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 16777619u;
    }
  };
  mix("shmkit:");
  mix(name);
  if (h == 0) h = 1;  // 0 is IPC_PRIVATE
  return IpcKey::FromNumber(static_cast<key_t>(h));
}

absl::StatusOr<absl::Duration> SecondsToDuration(double seconds,
                                                 absl::string_view what) {
  if (!std::isfinite(seconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", seconds, " is not a finite number of seconds"));
  }
  return absl::Seconds(seconds);
}

}  // namespace shmkit::php
