// The object commands' entry points, registered by ObjectCommands()
// (cmd_objects.cc).
#ifndef SHMKIT_TOOLS_SHMKIT_CMD_OBJECTS_H_
#define SHMKIT_TOOLS_SHMKIT_CMD_OBJECTS_H_

#include "absl/status/status.h"
#include "tools/shmkit/cli.h"

namespace shmkit::cli {

absl::Status RunLs(const Invocation& inv);       // cmd_ls.cc
absl::Status RunStat(const Invocation& inv);     // cmd_stat.cc
absl::Status RunRm(const Invocation& inv);       // cmd_rm.cc
absl::Status RunRecover(const Invocation& inv);  // cmd_rm.cc

}  // namespace shmkit::cli

#endif  // SHMKIT_TOOLS_SHMKIT_CMD_OBJECTS_H_
