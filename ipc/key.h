// IpcKey: the System V key that names a segment, semaphore set or queue.
#ifndef SHMKIT_IPC_KEY_H_
#define SHMKIT_IPC_KEY_H_

#include <sys/ipc.h>
#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shmkit {

// A System V IPC key. IPC_PRIVATE (the default) names an anonymous object
// that is shared only through fork; any other value names an object that
// unrelated processes can attach. Cheap to copy.
class IpcKey {
 public:
  constexpr IpcKey() = default;

  // The anonymous key, IPC_PRIVATE.
  static constexpr IpcKey Private() { return IpcKey(); }
  // An explicit key number; 0 is IPC_PRIVATE.
  static constexpr IpcKey FromNumber(key_t value) { return IpcKey(value); }
  // ftok(path, project_id). The path must exist (NotFound naming it
  // otherwise); project_id must be 1..255 because ftok keeps only its low
  // 8 bits and 0 is reserved (InvalidArgument otherwise). Two paths can map
  // to the same key (ftok hashes the inode); prefer explicit numbers when
  // several objects live on one machine.
  static absl::StatusOr<IpcKey> FromPath(const std::string& path,
                                         int project_id);
  // Parses "private", a decimal or 0x-prefixed hexadecimal number, or
  // "ftok:<path>:<project id>". InvalidArgument names the text otherwise.
  static absl::StatusOr<IpcKey> Parse(absl::string_view text);

  constexpr key_t value() const { return value_; }
  constexpr bool is_private() const { return value_ == IPC_PRIVATE; }
  // "private" or "0x" followed by 8 hex digits, the form `ipcs` prints.
  std::string ToString() const;

  friend constexpr bool operator==(IpcKey a, IpcKey b) {
    return a.value_ == b.value_;
  }

 private:
  constexpr explicit IpcKey(key_t value) : value_(value) {}
  key_t value_ = IPC_PRIVATE;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_KEY_H_
