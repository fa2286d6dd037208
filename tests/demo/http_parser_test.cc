// The demo server's HTTP/1.1 request parser (tools/prefork-demo/http.h), in
// process: what it accepts, what it refuses and with which status.
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/prefork-demo/http.h"

namespace shmkit::demo {
namespace {

using State = ParseResult::State;

ParseResult Parse(absl::string_view input, HttpRequest* request = nullptr) {
  HttpRequest ignored;
  return ParseRequest(input, request != nullptr ? request : &ignored);
}

int ErrorStatus(absl::string_view input) {
  const ParseResult r = Parse(input);
  return r.state == State::kError ? r.error_status : 0;
}

TEST(HttpParser, ParsesAGetWithHeadersAndQuery) {
  HttpRequest req;
  const std::string input =
      "GET /task/7?verbose=1 HTTP/1.1\r\nHost: example\r\n"
      "Cookie: a=1; sid=abc \r\nX-Empty:\r\n\r\n";
  const ParseResult r = Parse(input, &req);
  ASSERT_EQ(r.state, State::kDone) << r.error;
  EXPECT_EQ(r.consumed, input.size());
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.target, "/task/7?verbose=1");
  EXPECT_EQ(req.path(), "/task/7");
  EXPECT_EQ(req.minor_version, 1);
  EXPECT_EQ(req.Header("host"), "example");
  EXPECT_EQ(req.Header("x-empty"), "");
  EXPECT_EQ(req.Cookie("sid"), "abc");
  EXPECT_EQ(req.Cookie("a"), "1");
  EXPECT_FALSE(req.Cookie("s").has_value());
  EXPECT_TRUE(req.keep_alive);
  EXPECT_TRUE(req.body.empty());
}

TEST(HttpParser, WaitsForTheWholeHeadAndBody) {
  const std::string full =
      "POST /task HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_EQ(Parse(full.substr(0, n)).state, State::kNeedMore) << n;
  }
  HttpRequest req;
  ASSERT_EQ(Parse(full, &req).state, State::kDone);
  EXPECT_EQ(req.body, "hello");
}

TEST(HttpParser, LeavesPipelinedRequestsForTheNextCall) {
  const std::string one = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string two = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  HttpRequest req;
  ParseResult r = Parse(one + two, &req);
  ASSERT_EQ(r.state, State::kDone);
  EXPECT_EQ(r.consumed, one.size());
  EXPECT_EQ(req.target, "/a");
  r = Parse(std::string(one + two).substr(r.consumed), &req);
  ASSERT_EQ(r.state, State::kDone);
  EXPECT_EQ(req.target, "/b");
  // Empty lines before a request line are skipped (and consumed).
  r = Parse("\r\n\r\n" + one, &req);
  ASSERT_EQ(r.state, State::kDone);
  EXPECT_EQ(r.consumed, one.size() + 4);
}

TEST(HttpParser, ConnectionPersistenceFollowsTheVersionAndHeader) {
  HttpRequest req;
  ASSERT_EQ(
      Parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &req)
          .state,
      State::kDone);
  EXPECT_FALSE(req.keep_alive);
  ASSERT_EQ(Parse("GET / HTTP/1.0\r\n\r\n", &req).state, State::kDone);
  EXPECT_FALSE(req.keep_alive);  // and HTTP/1.0 needs no Host
  ASSERT_EQ(
      Parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req).state,
      State::kDone);
  EXPECT_TRUE(req.keep_alive);
  EXPECT_EQ(req.minor_version, 0);
}

TEST(HttpParser, MalformedInputIs400) {
  for (const char* input : {
           "GARBAGE\r\n\r\n",
           "GET\r\n\r\n",
           "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
           "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",       // not a token
           "GET nopath HTTP/1.1\r\nHost: x\r\n\r\n",  // not origin-form
           "GET / HTTPS/1.1\r\nHost: x\r\n\r\n",
           "GET / HTTP/1.1\r\n\r\n",  // no Host
           "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
           "GET / HTTP/1.1\nHost: x\n\n",         // bare LF
           "GET / HTTP/1.1\r\nHost : x\r\n\r\n",  // space before ':'
           "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
           "Content-Length: 2\r\n\r\nab",
       }) {
    EXPECT_EQ(ErrorStatus(input), 400) << absl::CEscape(input);
  }
  // A bare LF is refused before the head is complete.
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\n"), 400);
}

TEST(HttpParser, LimitsAndUnsupportedFeaturesHaveTheirOwnStatus) {
  // The head limit counts the request line, headers and blank line, and is
  // enforced before the head is complete.
  const std::string line = "GET / HTTP/1.1\r\nHost: x\r\nX: ";
  const std::string fits =
      line + std::string(kMaxHeadBytes - line.size() - 4, 'a') + "\r\n\r\n";
  EXPECT_EQ(Parse(fits).state, State::kDone);
  EXPECT_EQ(ErrorStatus(line + std::string(kMaxHeadBytes, 'a')), 431);
  const std::string post = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ";
  EXPECT_EQ(Parse(absl::StrCat(post, kMaxBodyBytes, "\r\n\r\n",
                               std::string(kMaxBodyBytes, 'b')))
                .state,
            State::kDone);
  EXPECT_EQ(ErrorStatus(absl::StrCat(post, kMaxBodyBytes + 1, "\r\n\r\n")),
            413);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: x\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"),
            501);
  EXPECT_EQ(ErrorStatus("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
}

TEST(HttpParser, ResponsesCarryLengthAndConnectionHeaders) {
  HttpResponse r;
  r.status = 404;
  r.body = "{}";
  r.headers.emplace_back("Allow", "GET");
  std::string out;
  AppendResponse(r, /*keep_alive=*/true, 1, &out);
  EXPECT_EQ(out,
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\nAllow: GET\r\n\r\n{}");
  out.clear();
  AppendResponse(r, /*keep_alive=*/false, 1, &out);
  EXPECT_THAT(out, ::testing::HasSubstr("Connection: close\r\n"));
  out.clear();
  AppendResponse(r, /*keep_alive=*/true, 0, &out);
  EXPECT_THAT(out, ::testing::HasSubstr("Connection: keep-alive\r\n"));
}

}  // namespace
}  // namespace shmkit::demo
