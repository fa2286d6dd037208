#include "tools/shmkit/cli.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "shmkit/redis/redis_queue.h"
#include "tools/shmkit/common_flags.h"

ABSL_FLAG(bool, json, false, "Print the output as JSON instead of text.");
ABSL_FLAG(bool, escaped, false,
          "Arguments that carry data (row keys, string values, messages) are "
          "C-escaped (\\n, \\t, \\\\, \\x00...), for binary data.");

#ifndef SHMKIT_VERSION
#define SHMKIT_VERSION "unknown"
#endif

namespace shmkit::cli {

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    default:
      return kExitFailure;
  }
}

void Print(absl::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
}
void PrintErr(absl::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stderr);
}

namespace {

std::string Dashed(absl::string_view name) {
  return absl::StrReplaceAll(name, {{"_", "-"}});
}

}  // namespace

std::string Wrap(absl::string_view text, size_t indent, size_t width) {
  std::string out;
  size_t col = indent;
  bool first = true;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!first && col + 1 + word.size() > width) {
      absl::StrAppend(&out, "\n", std::string(indent, ' '));
      col = indent;
    } else if (!first) {
      out.push_back(' ');
      ++col;
    }
    absl::StrAppend(&out, word);
    col += word.size();
    first = false;
  }
  return out;
}

namespace {

std::string FlagHelp(const std::string& name, bool repeatable) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return absl::StrCat("  --", Dashed(name), "\n");
  const bool is_bool = flag->IsOfType<bool>();
  std::string head = absl::StrCat("  --", Dashed(name), is_bool ? "" : "=X");
  std::string help = flag->Help();
  const std::string def = flag->DefaultValue();
  if (repeatable) absl::StrAppend(&help, " May be repeated.");
  if (!is_bool && !def.empty() && !absl::StrContains(help, "(required)")) {
    absl::StrAppend(&help, " Default: ", def, ".");
  }
  constexpr size_t kColumn = 26;
  std::string out = head;
  if (out.size() + 2 > kColumn) {
    absl::StrAppend(&out, "\n", std::string(kColumn, ' '));
  } else {
    out.append(kColumn - out.size(), ' ');
  }
  absl::StrAppend(&out, Wrap(help, kColumn, 79), "\n");
  return out;
}

std::string CommandHelp(const Command& c) {
  std::string out =
      absl::StrCat("usage: shmkit ", c.name, c.flags.empty() ? "" : " [flags]",
                   c.args.empty() ? "" : " ", c.args, "\n\n", c.summary, "\n");
  if (!c.details.empty()) absl::StrAppend(&out, "\n", c.details, "\n");
  absl::StrAppend(&out, "\nflags:\n");
  for (const std::string& f : c.flags) {
    const bool rep = std::find(c.repeatable.begin(), c.repeatable.end(), f) !=
                     c.repeatable.end();
    absl::StrAppend(&out, FlagHelp(f, rep));
  }
  absl::StrAppend(&out, "  --help                  Print this help.\n");
  absl::StrAppend(&out,
                  "\nexit codes: 0 ok, 1 failure, 2 usage error, 3 not "
                  "found.\n");
  return out;
}

constexpr absl::string_view kObjectSyntax =
    "Objects (OBJECT) are named the way ipcs(1) prints them:\n"
    "  0x5eed, key:24301, ftok:PATH:PROJ   the segment with that System V "
    "key\n"
    "  884746, id:884746                   the segment with that id (also "
    "reaches\n"
    "                                      an anonymous segment still "
    "attached)\n"
    "  msg:0x5eed, msg:32769               a message queue by key or id\n"
    "  sem:0x5eed, sem:12                  a semaphore set by key or id\n";

// The result of walking a command line.
struct Walked {
  Invocation invocation;
  bool help = false;
};

absl::StatusOr<Walked> Walk(const Command& c, int argc, char** argv) {
  Walked w;
  w.invocation.command = c.name;
  absl::flat_hash_map<std::string, std::vector<std::string>> values;
  std::vector<std::string> order;  // flags in first-seen order
  bool flags_done = false;
  for (int i = 0; i < argc; ++i) {
    absl::string_view arg = argv[i];
    const bool looks_like_flag =
        !flags_done && arg.size() > 1 && arg[0] == '-' &&
        !absl::ascii_isdigit(static_cast<unsigned char>(arg[1])) &&
        arg[1] != '.';
    if (!looks_like_flag) {
      w.invocation.args.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    absl::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
    std::optional<std::string> value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      value = std::string(body.substr(eq + 1));
      body = body.substr(0, eq);
    }
    std::string name = absl::StrReplaceAll(body, {{"-", "_"}});
    if (name == "help" || name == "h") {
      w.help = true;
      continue;
    }
    auto accepts = [&c](const std::string& n) {
      return std::find(c.flags.begin(), c.flags.end(), n) != c.flags.end();
    };
    if (!accepts(name) && absl::StartsWith(name, "no") &&
        accepts(name.substr(2)) && !value.has_value()) {
      const absl::CommandLineFlag* f =
          absl::FindCommandLineFlag(name.substr(2));
      if (f != nullptr && f->IsOfType<bool>()) {
        name = name.substr(2);
        value = "false";
      }
    }
    if (!accepts(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag --", Dashed(name), " for 'shmkit ", c.name, "'"));
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {
      return absl::InternalError(
          absl::StrCat("flag --", name, " is listed but not defined"));
    }
    if (!value.has_value()) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", Dashed(name), " needs a value"));
      }
    }
    const bool repeatable = std::find(c.repeatable.begin(), c.repeatable.end(),
                                      name) != c.repeatable.end();
    std::vector<std::string>& v = values[name];
    if (!v.empty() && !repeatable) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", Dashed(name), " is given twice"));
    }
    if (v.empty()) order.push_back(name);
    v.push_back(*std::move(value));
  }
  for (const std::string& name : order) {
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    const std::vector<std::string>& v = values[name];
    // Repeated values of a list flag are joined with commas, which is how
    // Abseil parses a std::vector<std::string> flag; the repeatable flags'
    // values never contain a comma of their own (each parser rejects one).
    for (const std::string& one : v) {
      if (v.size() > 1 && absl::StrContains(one, ',')) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", Dashed(name), "=", one,
                         ": a repeated flag's value cannot contain ','"));
      }
    }
    std::string error;
    if (!flag->ParseFrom(absl::StrJoin(v, ","), &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", Dashed(name), ": ", error));
    }
    w.invocation.given.insert(name);
  }
  if (w.help) return w;
  const int n = static_cast<int>(w.invocation.args.size());
  if (n < c.min_args || (c.max_args >= 0 && n > c.max_args)) {
    const std::string want = c.max_args < 0
                                 ? absl::StrCat("at least ", c.min_args)
                             : c.min_args == c.max_args
                                 ? absl::StrCat(c.min_args)
                                 : absl::StrCat(c.min_args, " to ", c.max_args);
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", want, " argument", c.max_args == 1 ? "" : "s",
                     " (", c.args.empty() ? "none" : c.args, "), got ", n));
  }
  return w;
}

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto* group :
       {&ObjectCommands, &TableCommands, &QueueCommands, &BenchCommands,
        &FaultCommands}) {
    for (Command& c : (*group)()) all.push_back(std::move(c));
  }
  return all;
}

}  // namespace

std::string TopLevelHelp(const std::vector<Command>& commands) {
  std::string out =
      "usage: shmkit COMMAND [flags] [args]\n\n"
      "Inspect and use shmkit's System V objects (tables, counters, queues),\n"
      "and benchmark them with several processes.\n\ncommands:\n";
  for (const Command& c : commands) {
    absl::StrAppend(&out, "  ", c.name, std::string(10 - c.name.size(), ' '),
                    Wrap(c.summary, 12, 79), "\n");
  }
  absl::StrAppend(
      &out, "\n", kObjectSyntax,
      "\nEvery command takes --help. Commands that print data take --json.\n"
      "Errors are printed to stderr as the status they came from.\n\n"
      "exit codes:\n"
      "  0  success\n"
      "  1  failure (a system call, a lock timeout, a full table, ...)\n"
      "  2  usage error: unknown command or flag, malformed value, missing\n"
      "     argument, or a value the object refuses (InvalidArgument)\n"
      "  3  not found: no such object, row key or queued message\n");
  return out;
}

int Main(int argc, char** argv) {
  // "redis:" queue specs for send, recv and bench (redis/redis_queue.h).
  if (absl::Status st = RegisterRedisQueueScheme(); !st.ok()) {
    PrintErr(absl::StrCat("shmkit: ", st.ToString(), "\n"));
    return kExitFailure;
  }
  const std::vector<Command> commands = AllCommands();
  if (argc < 2) {
    PrintErr(
        "usage: shmkit COMMAND [flags] [args]\n"
        "Run 'shmkit --help' for the commands, object names and exit "
        "codes.\n");
    return kExitUsage;
  }
  absl::string_view first = argv[1];
  if (first == "--version" || first == "version") {
    Print(absl::StrCat("shmkit ", SHMKIT_VERSION, "\n"));
    return kExitOk;
  }
  if (first == "--help" || first == "-h" || first == "help") {
    if (first == "help" && argc >= 3) {
      for (const Command& c : commands) {
        if (c.name == argv[2]) {
          Print(CommandHelp(c));
          return kExitOk;
        }
      }
      PrintErr(absl::StrCat("shmkit: unknown command \"", argv[2],
                            "\" (shmkit --help lists them)\n"));
      return kExitUsage;
    }
    Print(TopLevelHelp(commands));
    return kExitOk;
  }
  const Command* command = nullptr;
  for (const Command& c : commands) {
    if (c.name == first) command = &c;
  }
  if (command == nullptr) {
    PrintErr(absl::StrCat("shmkit: unknown command \"", first,
                          "\" (shmkit --help lists them)\n"));
    return kExitUsage;
  }
  absl::StatusOr<Walked> walked = Walk(*command, argc - 2, argv + 2);
  if (!walked.ok()) {
    PrintErr(absl::StrCat("shmkit ", command->name, ": ",
                          walked.status().message(), "\nRun 'shmkit ",
                          command->name, " --help' for usage.\n"));
    return walked.status().code() == absl::StatusCode::kInvalidArgument
               ? kExitUsage
               : kExitFailure;
  }
  if (walked->help) {
    Print(CommandHelp(*command));
    return kExitOk;
  }
  const absl::Status status = command->run(walked->invocation);
  if (std::fflush(stdout) != 0 && status.ok()) {
    PrintErr(absl::StrCat("shmkit ", command->name,
                          ": writing the output failed\n"));
    return kExitFailure;
  }
  if (!status.ok()) {
    PrintErr(
        absl::StrCat("shmkit ", command->name, ": ", status.ToString(), "\n"));
    return ExitCodeFor(status);
  }
  return kExitOk;
}

}  // namespace shmkit::cli
