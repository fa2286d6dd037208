#include "tools/prefork-demo/http.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace shmkit::demo {
namespace {

ParseResult Error(int status, std::string why) {
  return {ParseResult::State::kError, 0, status, std::move(why)};
}

absl::string_view Reason(int status) {
  static constexpr std::pair<int, absl::string_view> kReasons[] = {
      {200, "OK"},
      {202, "Accepted"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {413, "Content Too Large"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {503, "Service Unavailable"},
      {505, "HTTP Version Not Supported"}};
  for (const auto& [code, text] : kReasons) {
    if (code == status) return text;
  }
  return "Unknown";
}

}  // namespace

absl::string_view HttpRequest::path() const {
  return absl::string_view(target).substr(0, target.find('?'));
}

std::optional<absl::string_view> HttpRequest::Header(
    absl::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return std::nullopt;
}

std::optional<absl::string_view> HttpRequest::Cookie(
    absl::string_view name) const {
  for (absl::string_view pair : absl::StrSplit(Header("cookie").value_or(""),
                                               ';', absl::SkipWhitespace())) {
    pair = absl::StripAsciiWhitespace(pair);
    if (absl::ConsumePrefix(&pair, name) && absl::ConsumePrefix(&pair, "=")) {
      return pair;
    }
  }
  return std::nullopt;
}

ParseResult ParseRequest(absl::string_view input, HttpRequest* request) {
  // Empty lines before a request line are ignored (RFC 9112 2.2).
  size_t skipped = 0;
  while (input.substr(skipped, 2) == "\r\n") skipped += 2;
  input.remove_prefix(skipped);

  const size_t end = input.find("\r\n\r\n");
  const size_t head_bytes = end == input.npos ? input.size() : end + 4;
  // Refused as soon as they arrive, not once a CRLFCRLF that may never come.
  for (size_t i = 0; i < head_bytes; ++i) {
    if (input[i] == '\n' && (i == 0 || input[i - 1] != '\r')) {
      return Error(400, "bare LF in the request head");
    }
  }
  if (head_bytes > kMaxHeadBytes) {
    return Error(431, absl::StrCat("head over ", kMaxHeadBytes, " bytes"));
  }
  if (end == input.npos) return {};  // kNeedMore

  HttpRequest r;
  const std::vector<absl::string_view> lines =
      absl::StrSplit(input.substr(0, end), "\r\n");
  const std::vector<absl::string_view> first = absl::StrSplit(lines[0], ' ');
  if (first.size() != 3 || first[0].empty() ||
      first[0].find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
          first[0].npos ||
      !absl::StartsWith(first[1], "/")) {
    return Error(400, "malformed request line");
  }
  if (first[2] == "HTTP/1.1" || first[2] == "HTTP/1.0") {
    r.minor_version = first[2].back() - '0';
  } else if (absl::StartsWith(first[2], "HTTP/")) {
    return Error(505, "only HTTP/1.0 and HTTP/1.1 are supported");
  } else {
    return Error(400, "malformed HTTP version");
  }
  r.method = std::string(first[0]);
  r.target = std::string(first[1]);
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    const absl::string_view name = lines[i].substr(0, colon);
    if (colon == lines[i].npos || name.empty() ||
        name.find_first_of(" \t") != name.npos) {
      return Error(400, absl::StrCat("malformed header line ", i));
    }
    r.headers.emplace_back(
        absl::AsciiStrToLower(name),
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }

  // Framing: Content-Length only. Several must agree (RFC 9112 6.3), or
  // two servers on the way could each see a different body.
  if (r.Header("transfer-encoding").has_value()) {
    return Error(501, "Transfer-Encoding is not supported");
  }
  std::optional<uint64_t> length;
  int hosts = 0;
  for (const auto& [name, value] : r.headers) {
    hosts += name == "host";
    if (name != "content-length") continue;
    uint64_t n = 0;
    if (value.empty() || value.find_first_not_of("0123456789") != value.npos ||
        !absl::SimpleAtoi(value, &n) || (length.has_value() && *length != n)) {
      return Error(400, "invalid Content-Length");
    }
    length = n;
  }
  if (r.minor_version == 1 && hosts != 1) {
    return Error(400, "an HTTP/1.1 request needs exactly one Host header");
  }
  if (length.value_or(0) > kMaxBodyBytes) {
    return Error(413, absl::StrCat("body over ", kMaxBodyBytes, " bytes"));
  }
  const size_t body_bytes = length.value_or(0);
  if (input.size() - (end + 4) < body_bytes) return {};  // kNeedMore

  bool close = false;
  bool keep_alive = false;
  for (absl::string_view option :
       absl::StrSplit(r.Header("connection").value_or(""), ',')) {
    option = absl::StripAsciiWhitespace(option);
    close |= absl::EqualsIgnoreCase(option, "close");
    keep_alive |= absl::EqualsIgnoreCase(option, "keep-alive");
  }
  r.keep_alive = !close && (r.minor_version == 1 || keep_alive);
  r.body = std::string(input.substr(end + 4, body_bytes));
  *request = std::move(r);
  return {ParseResult::State::kDone, skipped + end + 4 + body_bytes};
}

void AppendResponse(const HttpResponse& response, bool keep_alive,
                    int minor_version, std::string* out) {
  absl::StrAppend(out, "HTTP/1.1 ", response.status, " ",
                  Reason(response.status),
                  "\r\nContent-Type: ", response.content_type,
                  "\r\nContent-Length: ", response.body.size(), "\r\n");
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(out, name, ": ", value, "\r\n");
  }
  if (!keep_alive) {
    out->append("Connection: close\r\n");
  } else if (minor_version == 0) {
    out->append("Connection: keep-alive\r\n");
  }
  absl::StrAppend(out, "\r\n", response.body);
}

}  // namespace shmkit::demo
