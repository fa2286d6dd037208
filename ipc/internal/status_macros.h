// Status propagation macros. Abseil 20220623 ships none, so shmkit has this
// small internal pair. Not part of the public API.
#ifndef SHMKIT_IPC_INTERNAL_STATUS_MACROS_H_
#define SHMKIT_IPC_INTERNAL_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function when it is not OK.
#define SHMKIT_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status shmkit_status_internal_ = (expr); \
    if (!shmkit_status_internal_.ok()) {             \
      return shmkit_status_internal_;                \
    }                                                \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from
// the enclosing function, otherwise move-assigns the value to `lhs`, which may
// be a declaration (`auto x`) or an existing lvalue.
#define SHMKIT_ASSIGN_OR_RETURN(lhs, rexpr) \
  SHMKIT_ASSIGN_OR_RETURN_IMPL_(            \
      SHMKIT_STATUS_CONCAT_(shmkit_statusor_, __LINE__), lhs, rexpr)

#define SHMKIT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) {                                     \
    return std::move(statusor).status();                    \
  }                                                         \
  lhs = std::move(statusor).value()

#define SHMKIT_STATUS_CONCAT_INNER_(a, b) a##b
#define SHMKIT_STATUS_CONCAT_(a, b) SHMKIT_STATUS_CONCAT_INNER_(a, b)

#endif  // SHMKIT_IPC_INTERNAL_STATUS_MACROS_H_
