// The shmkit command line: subcommands, their flags, exit codes.
//
// Flags are Abseil flags (ABSL_FLAG, defined in the file of the subcommand
// that owns them, or in cli.cc when several share them), parsed and printed
// through Abseil's flag reflection (absl::FindCommandLineFlag,
// CommandLineFlag::ParseFrom, Help, DefaultValue). The argument walker is our
// own rather than absl::ParseCommandLine because a subcommand tool needs
// three things that function does not give:
//   - each subcommand accepts only its own flags (Abseil's flags are global:
//     `shmkit get --capacity 5` must be a usage error, not silently ignored);
//   - a usage error exits with kExitUsage (ParseCommandLine exits with 1,
//     which we keep for failures), after printing what was wrong;
//   - a flag may be repeated (`--column a:int64 --column b:string:8`).
// Accepted forms: --name=value, --name value, --name for a boolean (and
// --noname), -name as --name, dashes or underscores inside names, and `--`
// to end the flags.
#ifndef SHMKIT_TOOLS_SHMKIT_CLI_H_
#define SHMKIT_TOOLS_SHMKIT_CLI_H_

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace shmkit::cli {

// Exit codes (also in `shmkit --help` and the README):
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // anything else that went wrong
inline constexpr int kExitUsage = 2;     // bad command line or argument
inline constexpr int kExitNotFound = 3;  // no such object, key or message

// The exit code for a failed Status: InvalidArgument is a usage error (the
// command as typed cannot work: unknown flag, malformed value, a value that
// does not fit its column), NotFound is kExitNotFound, every other code is
// kExitFailure.
int ExitCodeFor(const absl::Status& status);

// What a subcommand was given.
struct Invocation {
  std::string command;                     // "get"
  std::vector<std::string> args;           // positional arguments
  absl::flat_hash_set<std::string> given;  // flags present on the line
  bool Given(absl::string_view flag) const { return given.contains(flag); }
};

struct Command {
  std::string name = "";
  std::string args = "";                // synopsis of the positional arguments
  std::string summary = "";             // one line, for `shmkit --help`
  std::string details = "";             // paragraphs for `shmkit <name> --help`
  std::vector<std::string> flags = {};  // Abseil flag names it accepts
  std::vector<std::string> repeatable = {};  // flags that may be given
                                             // again (list flags)
  int min_args = 0;
  int max_args = 0;  // -1: unbounded
  std::function<absl::Status(const Invocation&)> run = nullptr;
};

// Every subcommand, in help order (defined in the cmd_*.cc files).
std::vector<Command> ObjectCommands();  // ls, stat, rm, recover
std::vector<Command> TableCommands();   // create, get, set, del, dump
std::vector<Command> QueueCommands();   // send, recv
std::vector<Command> BenchCommands();   // bench
std::vector<Command> FaultCommands();   // faults

// Runs the command line; returns the process exit code.
int Main(int argc, char** argv);

// Output helpers: stdout for data, stderr for diagnostics. Both are stdio
// streams; Print is fwrite without formatting.
void Print(absl::string_view text);
void PrintErr(absl::string_view text);

// Wraps `text` at `width` columns, starting at column `indent` and indenting
// continuation lines by as much.
std::string Wrap(absl::string_view text, size_t indent, size_t width);

// The help of the global options and exit codes (for `shmkit --help`).
std::string TopLevelHelp(const std::vector<Command>& commands);

}  // namespace shmkit::cli

#endif  // SHMKIT_TOOLS_SHMKIT_CLI_H_
