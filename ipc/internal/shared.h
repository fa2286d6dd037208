// Access to fields of structs that live in shared memory.
//
// Shared structs hold plain integers (so they stay trivially copyable and
// standard-layout, DESIGN.md section 3); every access that can race goes
// through std::atomic_ref. These helpers keep that readable.
#ifndef SHMKIT_IPC_INTERNAL_SHARED_H_
#define SHMKIT_IPC_INTERNAL_SHARED_H_

#include <atomic>
#include <cstdint>

namespace shmkit::internal {

static_assert(std::atomic_ref<uint64_t>::is_always_lock_free &&
                  std::atomic_ref<uint32_t>::is_always_lock_free &&
                  std::atomic_ref<int64_t>::is_always_lock_free,
              "shared-memory atomics must never fall back to a process-local "
              "lock");

template <typename T>
inline std::atomic_ref<T> Ref(T& field) {
  return std::atomic_ref<T>(field);
}

template <typename T>
inline T Load(const T& field,
              std::memory_order order = std::memory_order_acquire) {
  // atomic_ref needs a non-const reference even for loads; loading does not
  // modify the field.
  return std::atomic_ref<T>(const_cast<T&>(field)).load(order);
}

template <typename T>
inline void Store(T& field, T value,
                  std::memory_order order = std::memory_order_release) {
  std::atomic_ref<T>(field).store(value, order);
}

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_SHARED_H_
