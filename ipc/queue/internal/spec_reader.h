// SpecReader: how a backend takes its keys out of a parsed QueueSpec.
//
//   internal::SpecReader r(spec);
//   SHMKIT_ASSIGN_OR_RETURN(std::optional<uint64_t> slots,
//                           r.Uint("slots", 2, 1u << 24));
//   ...
//   SHMKIT_RETURN_IF_ERROR(r.Finish());   // any key nobody took is an error
//
// Every error is InvalidArgument and quotes the spec and the key.
#ifndef SHMKIT_IPC_QUEUE_INTERNAL_SPEC_READER_H_
#define SHMKIT_IPC_QUEUE_INTERNAL_SPEC_READER_H_

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"

namespace shmkit::internal {

class SpecReader {
 public:
  explicit SpecReader(const QueueSpec& spec);

  // "key=value": the value, nullopt when absent; a bare "key" is an error.
  absl::StatusOr<std::optional<std::string>> String(absl::string_view key);
  // Decimal or 0x-hexadecimal, within [min, max].
  absl::StatusOr<std::optional<uint64_t>> Uint(absl::string_view key,
                                               uint64_t min, uint64_t max);
  // Octal permission bits (e.g. 0600), within 0..0777.
  absl::StatusOr<std::optional<mode_t>> Mode(absl::string_view key);
  // A System V key as IpcKey::Parse reads it.
  absl::StatusOr<std::optional<IpcKey>> Key(absl::string_view key);
  // One of `choices`.
  absl::StatusOr<std::optional<std::string>> Choice(
      absl::string_view key, std::initializer_list<absl::string_view> choices);
  // "open=auto|create|attach".
  absl::StatusOr<std::optional<OpenMode>> Open(absl::string_view key);
  // "role=both|sender|receiver|peer_a|peer_b".
  absl::StatusOr<std::optional<QueueRole>> Role(absl::string_view key);
  // A bare flag ("private"): whether present; "flag=value" is an error.
  absl::StatusOr<bool> Flag(absl::string_view key);

  // InvalidArgument naming the first parameter no call above took, with the
  // keys this scheme knows.
  absl::Status Finish() const;

  // InvalidArgument about `key`, quoting the spec.
  absl::Status Error(absl::string_view key, absl::string_view what) const;

 private:
  const QueueSpecParam* Take(absl::string_view key);

  const QueueSpec& spec_;
  std::vector<bool> used_;
  std::vector<std::string> known_;
};

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_QUEUE_INTERNAL_SPEC_READER_H_
