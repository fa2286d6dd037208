// Helpers for the pool tests: zombie detection through /proc.
#ifndef SHMKIT_TESTS_POOL_POOL_TEST_UTIL_H_
#define SHMKIT_TESTS_POOL_POOL_TEST_UTIL_H_

#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"

namespace shmkit::testing {

// Pids of the zombie children of `parent` (state 'Z' in /proc/<pid>/stat).
inline std::vector<pid_t> ZombieChildrenOf(pid_t parent) {
  std::vector<pid_t> zombies;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return zombies;
  while (dirent* entry = readdir(proc)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::ifstream in(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;  // exited meanwhile
    // "pid (comm) state ppid ...": comm may hold spaces and ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state == 'Z') zombies.push_back(pid);
  }
  closedir(proc);
  return zombies;
}

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_POOL_POOL_TEST_UTIL_H_
