// Queue spec strings: how tools, benchmarks and configuration name a queue.
//
//   spec   := scheme [ ":" param { "," param } ]
//   param  := key "=" value | flag
//
// for example "sysv:key=0x5eed", "sysv:private", "pipe",
// "fifo:path=/run/app/q", "ring:slots=4096,slot_bytes=256". Schemes and keys
// are lower-case letters, digits and '_'; values are any non-empty text
// without ','. The grammar is the same for every backend; each backend says
// which keys it takes (an unknown key is InvalidArgument naming it), so a new
// backend only adds keys, never syntax.
#ifndef SHMKIT_IPC_QUEUE_SPEC_H_
#define SHMKIT_IPC_QUEUE_SPEC_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shmkit {

struct QueueSpecParam {
  std::string key;
  std::string value;       // empty for a flag
  bool has_value = false;  // "key=value" (true) or "flag" (false)
};

struct QueueSpec {
  std::string scheme;
  std::vector<QueueSpecParam> params;
  std::string text;  // the spec as given (for error messages)
};

// Parses the syntax only (not whether the scheme or keys exist).
// InvalidArgument naming the bad part: empty scheme, empty parameter,
// "key=" without a value, a key given twice, characters outside the
// alphabet.
absl::StatusOr<QueueSpec> ParseQueueSpec(absl::string_view text);

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_SPEC_H_
