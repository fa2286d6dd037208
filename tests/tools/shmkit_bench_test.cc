// `shmkit bench` with a tiny op count on each workload: it must finish in
// seconds, exit 0, and produce JSON that parses (with the figures a reader
// relies on: ops, ratios, ordered percentiles, the capacity promise) and an
// SVG chart that parses as XML and fetches nothing from outside.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shmkit {
namespace {

using ::shmkit::testing::CliResult;
using ::shmkit::testing::Python;
using ::shmkit::testing::Shmkit;
using ::shmkit::testing::TempFile;
using ::testing::HasSubstr;

// Small enough for seconds under ASan, big enough to cross the 1024-op
// progress stride and the 1-in-32 latency sampling many times.
const std::vector<std::string> kTinyRun = {
    "--ops=4000",     "--workers=2",       "--table-capacity=3000",
    "--preload=1000", "--session-ttl=5ms", "--msg-bytes=32"};

constexpr char kCheckJson[] = R"(
import json, sys
d = json.load(open(sys.argv[1]))
workload = sys.argv[2]
assert d["shmkit_bench"] == 1, d
assert d["config"]["workers"] == 2, d["config"]
results = d["results"]
assert results, d
assert all(r["workload"] == workload for r in results), results
names = [r["variant"] for r in results]
assert names[0] == "shmkit", names
assert len(names) >= 2, names  # at least one baseline beside shmkit
base = results[0]["ratio_base"]
assert base in names, (base, names)
for r in results:
    if r["skipped"]:
        assert r["skip_reason"], r
        continue
    assert r["ops"] > 0 and r["errors"] == 0, r
    assert r["elapsed_s"] > 0 and r["ops_per_s"] > 0 and r["ns_per_op"] > 0, r
    assert r["ratio"] > 0, r
    lat = r["latency_ns"]
    assert lat["samples"] > 0, r
    assert lat["p50"] <= lat["p99"] <= lat["max"], lat
    for kind, h in r["per_op"].items():
        if h["samples"]:
            assert h["p50"] <= h["max"], (kind, h)
    if r["variant"] == base:
        assert abs(r["ratio"] - 1) < 1e-9, r
if workload == "capacity":
    mine = results[0]
    assert mine["extra"]["fill_percent"] == 100.0, mine
    assert mine["extra"]["inserted"] == 3000, mine
    assert mine["extra"]["live_rows"] == 3000, mine
if workload.startswith("counter:") or workload == "hot-key":
    assert any(n.startswith("check:") for n in results[0]["notes"]), results[0]
)";

constexpr char kCheckSvg[] = R"(
import sys
import xml.etree.ElementTree as ET
text = open(sys.argv[1], encoding="utf-8").read()
root = ET.fromstring(text)
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
ns = {"s": "http://www.w3.org/2000/svg"}
bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect")
        if r.find("s:title", ns) is not None]
assert len(bars) >= int(sys.argv[2]), (len(bars), sys.argv[2])
assert "href" not in text and "url(" not in text and "@import" not in text
assert sys.argv[3] in text, sys.argv[3]
)";

class BenchWorkload : public ::testing::TestWithParam<std::string> {};

TEST_P(BenchWorkload, TinyRunGivesValidJsonAndSvg) {
  const std::string workload = GetParam();
  TempFile svg;
  std::vector<std::string> args = {"bench", "--json", "--svg", svg.path()};
  args.insert(args.end(), kTinyRun.begin(), kTinyRun.end());
  args.push_back(workload);
  CliResult r = Shmkit(args);
  ASSERT_EQ(r.code, 0) << r.Describe();

  TempFile json(r.out);
  CliResult check = Python(kCheckJson, {json.path(), workload});
  EXPECT_EQ(check.code, 0) << check.Describe() << "\nJSON:\n" << r.out;

  // One bar per variant that ran (skipped ones have none).
  CliResult count = Python(
      "import json, sys\n"
      "d = json.load(open(sys.argv[1]))\n"
      "print(sum(1 for r in d['results'] if not r['skipped']))\n",
      {json.path()});
  ASSERT_EQ(count.code, 0) << count.Describe();
  const std::string ran =
      std::string(count.out.substr(0, count.out.find('\n')));
  check = Python(kCheckSvg, {svg.path(), ran, workload});
  EXPECT_EQ(check.code, 0) << check.Describe() << "\nSVG:\n" << svg.Read();
}

INSTANTIATE_TEST_SUITE_P(
    EveryWorkload, BenchWorkload,
    ::testing::Values("read-heavy", "mixed", "write-heavy", "hot-key",
                      "ttl-churn", "capacity", "counter:atomic", "counter:sem",
                      "queue:sysv", "queue:ring", "queue:pipe",
                      "queue:socketpair", "queue:fifo"),
    [](const ::testing::TestParamInfo<std::string>& param) {
      std::string name;
      for (char c : param.param)
        name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

TEST(BenchText, PrintsTheSummaryTableWithBaselinesAndHowItMeasures) {
  std::vector<std::string> args = {"bench"};
  args.insert(args.end(), kTinyRun.begin(), kTinyRun.end());
  args.insert(args.end(), {"mixed", "counter:atomic"});
  CliResult r = Shmkit(args);
  ASSERT_EQ(r.code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("WORKLOAD"));
  EXPECT_THAT(r.out, HasSubstr("VS BASE"));
  EXPECT_THAT(r.out, HasSubstr("floor"));
  EXPECT_THAT(r.out, HasSubstr("raw fetch_add"));
  EXPECT_THAT(r.out, HasSubstr("1.00 (base)"));
  EXPECT_THAT(r.out, HasSubstr("timing adds"));
}

TEST(BenchText, ABadQueueSpecIsAUsageError) {
  CliResult r = Shmkit({"bench", "--ops=10", "queue:nosuchbackend"});
  EXPECT_EQ(r.code, 2) << r.Describe();
  r = Shmkit({"bench", "--ops=10", "queue:sysv:key=0x5e5e5e5e"});
  EXPECT_EQ(r.code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("fresh anonymous objects"));
}

}  // namespace
}  // namespace shmkit
