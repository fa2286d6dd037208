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

// RFC 9110 tchar: what method and header names are made of.
bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) !=
             absl::string_view::npos;
}
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

absl::string_view TrimOws(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

ParseResult Error(int status, std::string why) {
  ParseResult r;
  r.state = ParseResult::State::kError;
  r.error_status = status;
  r.error = std::move(why);
  return r;
}

// Parses "METHOD SP target SP HTTP/1.x" into `request`.
ParseResult ParseRequestLine(absl::string_view line, HttpRequest* request) {
  const std::vector<absl::string_view> parts =
      absl::StrSplit(line, absl::MaxSplits(' ', 2));
  if (parts.size() != 3 || !IsToken(parts[0])) {
    return Error(400, "malformed request line");
  }
  const absl::string_view target = parts[1];
  if (target.empty() || target.front() != '/') {
    return Error(400, "the request target must start with '/'");
  }
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return Error(400, "invalid character in the request target");
    }
  }
  const absl::string_view version = parts[2];
  if (version == "HTTP/1.1" || version == "HTTP/1.0") {
    request->minor_version = version.back() - '0';
  } else if (version.size() == 8 && absl::StartsWith(version, "HTTP/") &&
             absl::ascii_isdigit(version[5]) && version[6] == '.' &&
             absl::ascii_isdigit(version[7])) {
    return Error(505, absl::StrCat("unsupported version ", version));
  } else {
    return Error(400, "malformed HTTP version");
  }
  request->method = std::string(parts[0]);
  request->target = std::string(target);
  return {};
}

}  // namespace

absl::string_view HttpRequest::path() const {
  absl::string_view p = target;
  return p.substr(0, p.find('?'));
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
  const std::optional<absl::string_view> cookies = Header("cookie");
  if (!cookies.has_value()) return std::nullopt;
  for (absl::string_view pair : absl::StrSplit(*cookies, ';')) {
    pair = TrimOws(pair);
    if (absl::ConsumePrefix(&pair, name) && absl::ConsumePrefix(&pair, "=")) {
      return pair;
    }
  }
  return std::nullopt;
}

ParseResult ParseRequest(absl::string_view input, const HttpLimits& limits,
                         HttpRequest* request) {
  // RFC 9112 2.2: ignore empty lines before the request line (some clients
  // send a CRLF after a POST body).
  size_t skipped = 0;
  while (absl::StartsWith(input.substr(skipped), "\r\n")) skipped += 2;
  input.remove_prefix(skipped);

  const size_t end = input.find("\r\n\r\n");
  const size_t header_bytes =
      end == absl::string_view::npos ? input.size() : end + 4;
  // A bare LF is refused as soon as it is seen, rather than waiting for a
  // CRLFCRLF that may never come.
  for (size_t i = 0; i < header_bytes; ++i) {
    if (input[i] == '\n' && (i == 0 || input[i - 1] != '\r')) {
      return Error(400, "bare LF in the request head");
    }
  }
  if (header_bytes > limits.max_header_bytes) {
    return Error(431, absl::StrCat("request head longer than ",
                                   limits.max_header_bytes, " bytes"));
  }
  if (end == absl::string_view::npos) return {};  // kNeedMore

  HttpRequest parsed;
  std::vector<absl::string_view> lines =
      absl::StrSplit(input.substr(0, end), "\r\n");
  if (ParseResult r = ParseRequestLine(lines[0], &parsed);
      r.state == ParseResult::State::kError) {
    return r;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const absl::string_view line = lines[i];
    if (line.front() == ' ' || line.front() == '\t') {
      return Error(400, "obsolete header line folding");
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || !IsToken(line.substr(0, colon))) {
      return Error(400, absl::StrCat("malformed header line ", i));
    }
    const absl::string_view value = TrimOws(line.substr(colon + 1));
    for (char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        return Error(400, "control character in a header value");
      }
    }
    parsed.headers.emplace_back(absl::AsciiStrToLower(line.substr(0, colon)),
                                std::string(value));
  }

  // Framing: Content-Length only. Several Content-Length headers must agree
  // (RFC 9112 6.3); a body we cannot delimit is refused.
  if (parsed.Header("transfer-encoding").has_value()) {
    return Error(501, "Transfer-Encoding is not supported");
  }
  std::optional<uint64_t> length;
  int hosts = 0;
  for (const auto& [name, value] : parsed.headers) {
    hosts += name == "host";
    if (name != "content-length") continue;
    uint64_t n = 0;
    if (value.empty() || value.size() > 19 ||
        value.find_first_not_of("0123456789") != std::string::npos ||
        !absl::SimpleAtoi(value, &n) || (length.has_value() && *length != n)) {
      return Error(400, "invalid Content-Length");
    }
    length = n;
  }
  if (parsed.minor_version == 1 && hosts != 1) {
    return Error(400, "an HTTP/1.1 request needs exactly one Host header");
  }
  const uint64_t body_bytes = length.value_or(0);
  if (body_bytes > limits.max_body_bytes) {
    return Error(413, absl::StrCat("body longer than ", limits.max_body_bytes,
                                   " bytes"));
  }
  const size_t head_end = end + 4;
  if (input.size() - head_end < body_bytes) return {};  // kNeedMore

  parsed.keep_alive = parsed.minor_version == 1;
  if (std::optional<absl::string_view> c = parsed.Header("connection")) {
    for (absl::string_view option : absl::StrSplit(*c, ',')) {
      option = TrimOws(option);
      if (absl::EqualsIgnoreCase(option, "close")) parsed.keep_alive = false;
      if (absl::EqualsIgnoreCase(option, "keep-alive")) {
        parsed.keep_alive = true;
      }
    }
  }
  parsed.body = std::string(input.substr(head_end, body_bytes));
  *request = std::move(parsed);
  ParseResult done;
  done.state = ParseResult::State::kDone;
  done.consumed = skipped + head_end + body_bytes;
  return done;
}

absl::string_view StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void AppendResponse(const HttpResponse& response, bool keep_alive,
                    int request_minor_version, std::string* out) {
  absl::StrAppend(out, "HTTP/1.1 ", response.status, " ",
                  StatusText(response.status),
                  "\r\nContent-Type: ", response.content_type,
                  "\r\nContent-Length: ", response.body.size(), "\r\n");
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(out, name, ": ", value, "\r\n");
  }
  if (!keep_alive) {
    out->append("Connection: close\r\n");
  } else if (request_minor_version == 0) {
    out->append("Connection: keep-alive\r\n");
  }
  absl::StrAppend(out, "\r\n", response.body);
}

}  // namespace shmkit::demo
