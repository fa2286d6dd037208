// shmkit send, recv: any queue backend, named by a spec (ipc/queue/spec.h).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "tools/shmkit/cli.h"
#include "tools/shmkit/common_flags.h"
#include "tools/shmkit/text.h"

#if __has_include("shmkit/ipc/queue/factory.h")
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/ring_queue.h"
#include "shmkit/ipc/queue/spec.h"
#include "shmkit/ipc/kernel_limits.h"
#define SHMKIT_CLI_HAVE_QUEUES 1
#endif

ABSL_FLAG(std::string, type, "",
          "send: the message type, a positive integer (default 1). recv: "
          "which message to take: N (type N), <=N (the lowest type up to N), "
          "!N (any type but N), or any (the default). Typed receive needs a "
          "backend that has it (sysv).");
ABSL_FLAG(absl::Duration, timeout, absl::InfiniteDuration(),
          "How long to wait for room (send) or a message (recv); 0: do not "
          "wait. A recv that gets nothing exits with code 3.");
ABSL_FLAG(bool, stdin, false,
          "send: the message is everything read from standard input.");
ABSL_FLAG(uint64_t, count, 1,
          "recv: messages to receive (0: until none is "
          "left within --timeout).");
ABSL_FLAG(uint64_t, max_bytes, 0,
          "recv: the largest message accepted (0: the backend's maximum).");
ABSL_FLAG(bool, truncate, false,
          "recv: take a longer message, keeping its first --max-bytes bytes "
          "(marked truncated), instead of failing.");
ABSL_FLAG(bool, raw, false,
          "recv: write the message bytes as they are (no escaping, no "
          "newline).");

namespace shmkit::cli {
namespace {

#if defined(SHMKIT_CLI_HAVE_QUEUES)

// send and recv outlive nothing: a queue they create anonymously would be
// gone when they exit. Require a name unrelated processes share.
absl::StatusOr<QueueSpec> ParseNamedSpec(absl::string_view text) {
  SHMKIT_ASSIGN_OR_RETURN(QueueSpec spec, ParseQueueSpec(text));
  bool named = false;
  for (const QueueSpecParam& p : spec.params) {
    named = named || p.key == "key" || p.key == "id" || p.key == "path" ||
            (spec.scheme == "redis" && p.key == "name");
  }
  if (!named) {
    return absl::InvalidArgumentError(absl::StrCat(
        "queue \"", text,
        "\" is anonymous: it would vanish when shmkit exits; name one other "
        "processes can reach (sysv:key=0x5eed, sysv:id=N, "
        "ring:key=0x5eed, fifo:path=/run/app/q)"));
  }
  return spec;
}

absl::StatusOr<std::unique_ptr<Queue>> OpenNamedQueue(absl::string_view text) {
  SHMKIT_ASSIGN_OR_RETURN(QueueSpec spec, ParseNamedSpec(text));
  return OpenQueue(spec);
}

// `spec` with its open mode set to `mode` ("attach", "create").
QueueSpec WithOpenMode(QueueSpec spec, absl::string_view mode) {
  for (QueueSpecParam& p : spec.params) {
    if (p.key == "open") {
      p.value = std::string(mode);
      return spec;
    }
  }
  spec.params.push_back({.key = "open", .value = std::string(mode),
                         .has_value = true});
  return spec;
}

// Opens the queue `send` writes to without leaving a new queue behind when
// a message cannot go. An existing queue is attached first and checked
// against its own limit. A queue to be created is checked before creation
// against the limit known beforehand (sysv: kernel.msgmax and msgmnb; ring:
// slot_bytes), and removed again if a message still turns out too long for
// it. Backends without an open mode are opened as given and closed when a
// message is too long.
absl::StatusOr<std::unique_ptr<Queue>> OpenForSend(absl::string_view text,
                                                   size_t longest) {
  SHMKIT_ASSIGN_OR_RETURN(QueueSpec spec, ParseNamedSpec(text));
  auto too_long = [&](uint64_t limit, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a message of ", longest, " bytes is longer than ", limit,
        " bytes, the most ", what, " takes; nothing was sent to \"", text,
        "\" and no queue was created"));
  };
  auto fits = [&](std::unique_ptr<Queue>& q, bool created)
      -> absl::StatusOr<std::unique_ptr<Queue>> {
    const size_t limit = q->Capabilities().max_message_bytes;
    if (longest <= limit) return std::move(q);
    if (created) (void)q->Remove();
    (void)q->Close();
    return too_long(limit, "this queue");
  };
  const bool has_open = spec.scheme == "sysv" || spec.scheme == "ring" ||
                        spec.scheme == "fifo" || spec.scheme == "redis";
  if (!has_open) {
    SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<Queue> q, OpenQueue(spec));
    return fits(q, /*created=*/false);
  }
  std::string mode = "auto";
  for (const QueueSpecParam& p : spec.params) {
    if (p.key == "open") mode = p.value;
  }
  if (mode != "create") {
    absl::StatusOr<std::unique_ptr<Queue>> q =
        OpenQueue(WithOpenMode(spec, "attach"));
    if (q.ok()) return fits(*q, /*created=*/false);
    if (mode == "attach" || !absl::IsNotFound(q.status())) return q.status();
  }
  // It has to be created: what is known before creating it.
  if (spec.scheme == "sysv") {
    SHMKIT_ASSIGN_OR_RETURN(const uint64_t msgmax, ReadKernelLimit("msgmax"));
    SHMKIT_ASSIGN_OR_RETURN(const uint64_t msgmnb, ReadKernelLimit("msgmnb"));
    const uint64_t limit = std::min(msgmax, msgmnb);
    if (longest > limit) return too_long(limit, "kernel.msgmax/msgmnb allow");
  } else if (spec.scheme == "ring") {
    uint64_t slot_bytes = RingQueueOptions{}.slot_bytes;
    for (const QueueSpecParam& p : spec.params) {
      // An unparsable value is left for the ring to refuse.
      if (p.key == "slot_bytes") (void)absl::SimpleAtoi(p.value, &slot_bytes);
    }
    if (longest > slot_bytes) return too_long(slot_bytes, "a ring slot");
  }
  absl::StatusOr<std::unique_ptr<Queue>> q =
      OpenQueue(WithOpenMode(spec, "create"));
  if (q.ok()) return fits(*q, /*created=*/true);
  if (mode == "auto" && absl::IsAlreadyExists(q.status())) {
    // Created by someone else since our attach: theirs to keep.
    SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<Queue> theirs,
                            OpenQueue(WithOpenMode(spec, "attach")));
    return fits(theirs, /*created=*/false);
  }
  return q.status();
}

absl::StatusOr<int64_t> SendType() {
  const std::string text = absl::GetFlag(FLAGS_type);
  if (text.empty()) return kDefaultMessageType;
  int64_t type;
  if (!absl::SimpleAtoi(text, &type) || type <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--type \"", text, "\": expected a positive integer"));
  }
  return type;
}

absl::StatusOr<TypeFilter> ReceiveFilter() {
  std::string text = absl::GetFlag(FLAGS_type);
  if (text.empty() || text == "any" || text == "0") return TypeFilter::Any();
  absl::string_view t = text;
  TypeFilter::Kind kind = TypeFilter::Kind::kExactly;
  if (absl::ConsumePrefix(&t, "<=")) {
    kind = TypeFilter::Kind::kAtMost;
  } else if (absl::ConsumePrefix(&t, "!")) {
    kind = TypeFilter::Kind::kAnyExcept;
  }
  int64_t type;
  if (!absl::SimpleAtoi(t, &type) || type <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--type \"", text, "\": expected N, <=N, !N or any (N > 0)"));
  }
  switch (kind) {
    case TypeFilter::Kind::kAtMost:
      return TypeFilter::AtMost(type);
    case TypeFilter::Kind::kAnyExcept:
      return TypeFilter::AnyExcept(type);
    default:
      return TypeFilter::Exactly(type);
  }
}

WaitMode WaitFromFlag() {
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout == absl::InfiniteDuration()) return WaitMode::Forever();
  if (timeout <= absl::ZeroDuration()) return WaitMode::None();
  return WaitMode::For(timeout);
}

absl::StatusOr<std::string> ReadStdin() {
  std::string data;
  char buf[65536];
  while (true) {
    const ssize_t n = internal::RetryOnEintr(
        [&] { return read(STDIN_FILENO, buf, sizeof(buf)); });
    if (n < 0) return internal::ErrnoStatus(errno, "read(stdin)");
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
  }
}

absl::Status RunSend(const Invocation& inv) {
  std::vector<std::string> messages;
  if (absl::GetFlag(FLAGS_stdin)) {
    if (inv.args.size() > 1) {
      return absl::InvalidArgumentError(
          "--stdin sends standard input: give no MESSAGE arguments");
    }
    SHMKIT_ASSIGN_OR_RETURN(std::string data, ReadStdin());
    messages.push_back(std::move(data));
  } else {
    if (inv.args.size() < 2) {
      return absl::InvalidArgumentError(
          "nothing to send: give MESSAGE arguments or --stdin");
    }
    for (size_t i = 1; i < inv.args.size(); ++i) {
      if (absl::GetFlag(FLAGS_escaped)) {
        SHMKIT_ASSIGN_OR_RETURN(std::string m,
                                Unescape(inv.args[i], "message"));
        messages.push_back(std::move(m));
      } else {
        messages.push_back(inv.args[i]);
      }
    }
  }
  SHMKIT_ASSIGN_OR_RETURN(int64_t type, SendType());
  size_t longest = 0;
  for (const std::string& m : messages) longest = std::max(longest, m.size());
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<Queue> queue,
                          OpenForSend(inv.args[0], longest));
  const WaitMode wait = WaitFromFlag();
  uint64_t sent = 0;
  absl::Status status;
  for (const std::string& m : messages) {
    status = queue->SendWith(m, type, wait);
    if (!status.ok()) break;
    ++sent;
  }
  absl::Status closed = queue->Close();
  if (status.ok()) status = closed;
  if (absl::GetFlag(FLAGS_json)) {
    Print(absl::StrCat("{\"sent\":", sent, "}\n"));
  }
  return status;
}

absl::Status RunRecv(const Invocation& inv) {
  SHMKIT_ASSIGN_OR_RETURN(TypeFilter filter, ReceiveFilter());
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<Queue> queue,
                          OpenNamedQueue(inv.args[0]));
  uint64_t max_bytes = absl::GetFlag(FLAGS_max_bytes);
  if (max_bytes == 0) max_bytes = queue->Capabilities().max_message_bytes;
  const uint64_t count = absl::GetFlag(FLAGS_count);
  if (count == 0 && absl::GetFlag(FLAGS_timeout) == absl::InfiniteDuration()) {
    (void)queue->Close();
    return absl::InvalidArgumentError(
        "--count=0 (until the queue is empty) needs a --timeout");
  }
  const bool as_json = absl::GetFlag(FLAGS_json);
  const bool raw = absl::GetFlag(FLAGS_raw);
  const Truncation truncation =
      absl::GetFlag(FLAGS_truncate) ? Truncation::kAllow : Truncation::kError;
  Message message;
  uint64_t received = 0;
  absl::Status status;
  while (count == 0 || received < count) {
    status = queue->ReceiveInto(message, max_bytes, WaitFromFlag(), filter,
                                truncation);
    if (!status.ok()) break;
    ++received;
    if (as_json) {
      JsonWriter json;
      json.BeginObject();
      json.Key("type").Int(message.type);
      json.Key("bytes").Uint(message.data.size());
      json.Key("data").Text(message.data);
      json.Key("truncated").Bool(message.truncated);
      json.EndObject();
      Print(json.str());
      Print("\n");
    } else if (raw) {
      Print(message.data);
    } else {
      Print(absl::StrCat(EscapeBytes(message.data),
                         message.truncated ? " [truncated]" : "", "\n"));
    }
  }
  (void)queue->Close();
  if (!status.ok() &&
      (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status))) {
    if (count == 0 && received > 0) return absl::OkStatus();
    return absl::NotFoundError(
        absl::StrCat("no message within ",
                     absl::FormatDuration(absl::GetFlag(FLAGS_timeout)),
                     " (received ", received, "): ", status.message()));
  }
  return status;
}

#else  // !SHMKIT_CLI_HAVE_QUEUES

absl::Status RunSend(const Invocation&) {
  return absl::UnimplementedError(
      "send is not available: this build has no ipc/queue module");
}
absl::Status RunRecv(const Invocation&) {
  return absl::UnimplementedError(
      "recv is not available: this build has no ipc/queue module");
}

#endif  // SHMKIT_CLI_HAVE_QUEUES

std::string SpecHelp() {
  std::string out =
      "SPEC names a queue as scheme:param,param... (ipc/queue/factory.h):\n";
#if defined(SHMKIT_CLI_HAVE_QUEUES)
  for (const QueueScheme& s : QueueSchemes()) {
    absl::StrAppend(&out, "  ", s.scheme, ": ", s.summary, "\n");
  }
  absl::StrAppend(&out,
                  "The queue must have a name other processes share (key=, "
                  "id= or path=).");
#else
  absl::StrAppend(&out, "  (this build has no ipc/queue module)");
#endif
  return out;
}

}  // namespace

std::vector<Command> QueueCommands() {
  std::vector<Command> c;
  c.push_back({.name = "send",
               .args = "SPEC [MESSAGE...]",
               .summary = "Send messages (or standard input) to a queue.",
               .details = SpecHelp(),
               .flags = {"type", "timeout", "stdin", "escaped", "json"},
               .min_args = 1,
               .max_args = -1,
               .run = RunSend});
  c.push_back(
      {.name = "recv",
       .args = "SPEC",
       .summary = "Receive messages from a queue and print them.",
       .details = absl::StrCat(
           SpecHelp(),
           "\nText output: one line per message, C-escaped where not "
           "printable UTF-8;\n--raw writes the bytes as they are; --json "
           "prints one object per line\n{\"type\", \"bytes\", \"data\" (a "
           "string, or {\"hex\": ...}), \"truncated\"}."),
       .flags = {"type", "timeout", "count", "max_bytes", "truncate", "raw",
                 "json"},
       .min_args = 1,
       .max_args = 1,
       .run = RunRecv});
  return c;
}

}  // namespace shmkit::cli
