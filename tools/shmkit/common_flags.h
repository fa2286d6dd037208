// Flags shared by several subcommands (defined in cli.cc). Each subcommand
// still lists the ones it accepts (cli.h).
#ifndef SHMKIT_TOOLS_SHMKIT_COMMON_FLAGS_H_
#define SHMKIT_TOOLS_SHMKIT_COMMON_FLAGS_H_

#include "absl/flags/declare.h"

// Print data as JSON instead of text.
ABSL_DECLARE_FLAG(bool, json);
// Keys and string values on the command line are C-escaped (\x00, \n, \\).
ABSL_DECLARE_FLAG(bool, escaped);

#endif  // SHMKIT_TOOLS_SHMKIT_COMMON_FLAGS_H_
