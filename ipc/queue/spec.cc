#include "shmkit/ipc/queue/spec.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "shmkit/ipc/queue/internal/spec_reader.h"

namespace shmkit {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}
bool IsName(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

absl::Status SpecError(absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("queue spec \"", text, "\": ", what));
}

}  // namespace

absl::StatusOr<QueueSpec> ParseQueueSpec(absl::string_view text) {
  QueueSpec spec;
  spec.text = std::string(text);
  const size_t colon = text.find(':');
  const absl::string_view scheme = text.substr(0, colon);
  if (scheme.empty()) {
    return SpecError(text, "the scheme (before ':') is empty");
  }
  if (!IsName(scheme)) {
    return SpecError(text, absl::StrCat("scheme \"", scheme,
                                        "\" must be lower-case letters, "
                                        "digits and '_'"));
  }
  spec.scheme = std::string(scheme);
  if (colon == absl::string_view::npos) return spec;
  const absl::string_view rest = text.substr(colon + 1);
  if (rest.empty()) {
    return SpecError(text, "nothing after ':' (drop the ':' for no options)");
  }
  for (absl::string_view item : absl::StrSplit(rest, ',')) {
    if (item.empty()) {
      return SpecError(text,
                       "empty parameter (two ',' in a row, or a ',' at "
                       "either end)");
    }
    QueueSpecParam param;
    const size_t eq = item.find('=');
    const absl::string_view key = item.substr(0, eq);
    if (!IsName(key)) {
      return SpecError(text, absl::StrCat("parameter name \"", key,
                                          "\" must be lower-case letters, "
                                          "digits and '_'"));
    }
    param.key = std::string(key);
    if (eq != absl::string_view::npos) {
      param.value = std::string(item.substr(eq + 1));
      param.has_value = true;
      if (param.value.empty()) {
        return SpecError(text,
                         absl::StrCat("parameter \"", key, "\" has no value"));
      }
      // Number parsers skip surrounding blanks, so "slots=4 " would read as
      // 4 and "key=0x5eed " would create a queue the user did not name.
      if (absl::ascii_isspace(static_cast<unsigned char>(param.value.front())) ||
          absl::ascii_isspace(static_cast<unsigned char>(param.value.back()))) {
        return SpecError(
            text, absl::StrCat("parameter \"", key, "\" value \"",
                               absl::CEscape(param.value),
                               "\" has leading or trailing whitespace"));
      }
    }
    for (const QueueSpecParam& p : spec.params) {
      if (p.key == param.key) {
        return SpecError(text,
                         absl::StrCat("parameter \"", key, "\" given twice"));
      }
    }
    spec.params.push_back(std::move(param));
  }
  return spec;
}

namespace internal {

SpecReader::SpecReader(const QueueSpec& spec)
    : spec_(spec), used_(spec.params.size(), false) {}

absl::Status SpecReader::Error(absl::string_view key,
                               absl::string_view what) const {
  return SpecError(spec_.text, absl::StrCat("parameter \"", key, "\" ", what));
}

const QueueSpecParam* SpecReader::Take(absl::string_view key) {
  known_.emplace_back(key);
  for (size_t i = 0; i < spec_.params.size(); ++i) {
    if (spec_.params[i].key == key) {
      used_[i] = true;
      return &spec_.params[i];
    }
  }
  return nullptr;
}

absl::StatusOr<std::optional<std::string>> SpecReader::String(
    absl::string_view key) {
  const QueueSpecParam* p = Take(key);
  if (p == nullptr) return std::nullopt;
  if (!p->has_value) return Error(key, "needs a value (key=value)");
  return p->value;
}

absl::StatusOr<std::optional<uint64_t>> SpecReader::Uint(absl::string_view key,
                                                         uint64_t min,
                                                         uint64_t max) {
  absl::StatusOr<std::optional<std::string>> text = String(key);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::nullopt;
  absl::string_view digits = **text;
  uint64_t value = 0;
  bool ok;
  if (absl::ConsumePrefix(&digits, "0x") ||
      absl::ConsumePrefix(&digits, "0X")) {
    ok = !digits.empty() && absl::SimpleHexAtoi(digits, &value);
  } else {
    ok = !digits.empty() && absl::ascii_isdigit(digits[0]) &&
         absl::SimpleAtoi(digits, &value);
  }
  if (!ok) {
    return Error(
        key, absl::StrCat("value \"", **text, "\" is not an unsigned number"));
  }
  if (value < min || value > max) {
    return Error(key,
                 absl::StrCat("value ", value, " is outside ", min, "..", max));
  }
  return value;
}

absl::StatusOr<std::optional<mode_t>> SpecReader::Mode(absl::string_view key) {
  absl::StatusOr<std::optional<std::string>> text = String(key);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::nullopt;
  uint32_t value = 0;
  for (char c : **text) {
    if (c < '0' || c > '7' || value > 0777) {
      value = 01000;
      break;
    }
    value = value * 8 + static_cast<uint32_t>(c - '0');
  }
  if (value > 0777) {
    return Error(key, absl::StrCat("value \"", **text,
                                   "\" is not octal permission bits "
                                   "(0..0777, e.g. 0600)"));
  }
  return static_cast<mode_t>(value);
}

absl::StatusOr<std::optional<IpcKey>> SpecReader::Key(absl::string_view key) {
  absl::StatusOr<std::optional<std::string>> text = String(key);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::nullopt;
  absl::StatusOr<IpcKey> parsed = IpcKey::Parse(**text);
  if (!parsed.ok()) return Error(key, parsed.status().message());
  return *parsed;
}

absl::StatusOr<std::optional<std::string>> SpecReader::Choice(
    absl::string_view key, std::initializer_list<absl::string_view> choices) {
  absl::StatusOr<std::optional<std::string>> text = String(key);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::nullopt;
  for (absl::string_view c : choices) {
    if (c == **text) return text;
  }
  return Error(key, absl::StrCat("value \"", **text, "\" is not one of ",
                                 absl::StrJoin(choices, ", ")));
}

absl::StatusOr<std::optional<OpenMode>> SpecReader::Open(
    absl::string_view key) {
  absl::StatusOr<std::optional<std::string>> c =
      Choice(key, {"auto", "create", "attach"});
  if (!c.ok()) return c.status();
  if (!c->has_value()) return std::nullopt;
  if (**c == "create") return OpenMode::kCreate;
  if (**c == "attach") return OpenMode::kAttach;
  return OpenMode::kCreateOrAttach;
}

absl::StatusOr<std::optional<QueueRole>> SpecReader::Role(
    absl::string_view key) {
  absl::StatusOr<std::optional<std::string>> c =
      Choice(key, {"both", "sender", "receiver", "peer_a", "peer_b"});
  if (!c.ok()) return c.status();
  if (!c->has_value()) return std::nullopt;
  if (**c == "sender") return QueueRole::kSender;
  if (**c == "receiver") return QueueRole::kReceiver;
  if (**c == "peer_a") return QueueRole::kPeerA;
  if (**c == "peer_b") return QueueRole::kPeerB;
  return QueueRole::kSendAndReceive;
}

absl::StatusOr<bool> SpecReader::Flag(absl::string_view key) {
  const QueueSpecParam* p = Take(key);
  if (p == nullptr) return false;
  if (p->has_value) {
    return Error(key, "is a flag and takes no value");
  }
  return true;
}

absl::Status SpecReader::Finish() const {
  for (size_t i = 0; i < spec_.params.size(); ++i) {
    if (used_[i]) continue;
    return SpecError(
        spec_.text,
        absl::StrCat(
            "unknown parameter \"", spec_.params[i].key, "\" for scheme ",
            spec_.scheme,
            known_.empty()
                ? std::string(" (it takes none)")
                : absl::StrCat(" (known: ", absl::StrJoin(known_, ", "), ")")));
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace shmkit
