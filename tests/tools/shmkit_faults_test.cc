// `shmkit faults`: its flags are checked before anything is created, and a
// small campaign prints every check as JSON (the ctest entries
// tools.faults.* run the real campaigns; tests/README.md).
#include <string>
#include <vector>

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

TEST(FaultsCli, BadFlagsAreUsageErrors) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"faults", "--workers=1"},
           {"faults", "--workers=65"},
           {"faults", "--hot-keys=0"},
           {"faults", "--capacity=10"},
           {"faults", "--kill-every=0s"},
           {"faults", "--kills=5", "--duration=1s"},
           {"faults", "--recovery-kills=60", "--writer-kills=60"},
           {"faults", "--key=x"},
       }) {
    CliResult r = Shmkit(args);
    EXPECT_EQ(r.code, 2) << r.Describe();
    EXPECT_THAT(r.err, HasSubstr("shmkit faults")) << r.Describe();
  }
}

TEST(FaultsCli, HelpNamesEveryCheck) {
  CliResult r = Shmkit({"faults", "--help"});
  ASSERT_EQ(r.code, 0) << r.Describe();
  for (const char* words :
       {"--kills", "--kill-every", "--recovery-kills", "CheckConsistency",
        "sent == received", "no IPC object left"}) {
    EXPECT_THAT(r.out, HasSubstr(words));
  }
}

constexpr char kCheckJson[] = R"(
import json, sys
d = json.load(open(sys.argv[1]))
assert d["kills"] == 30, d["kills"]
assert d["workers"] == 4 and d["capacity"] == 256, d
assert d["respawns"] >= 30, d
assert d["calls"] > 0 and d["calls_by_kind"]["incr"] > 0, d
names = [c["name"] for c in d["checks"]]
for want in ("hot keys", "AtomicCounter", "SemCounter", "no torn row",
             "Count() equals", "never above capacity", "CheckConsistency",
             "fill to capacity", "ring: every acknowledged",
             "ring: sent == received", "no IPC object left"):
    assert any(want in n for n in names), (want, names)
table = [c for c in d["checks"] if not c["name"].startswith("ring:")]
bad = [c for c in table if not c["ok"]]
assert not bad, bad
assert d["ok"] == all(c["ok"] for c in d["checks"]), d
)";

// The table's and counters' checks must pass; the ring's are printed (the
// campaign ctest entries hold them to the exact equation).
TEST(FaultsCli, ASmallCampaignPrintsEveryCheckAsJson) {
  CliResult r = Shmkit({"faults", "--json", "--workers=4", "--kills=30"});
  ASSERT_TRUE(r.code == 0 || r.code == 1) << r.Describe();
  TempFile json(r.out);
  CliResult check = Python(kCheckJson, {json.path()});
  EXPECT_EQ(check.code, 0) << check.Describe() << "\nJSON:\n" << r.out;
}

}  // namespace
}  // namespace shmkit
