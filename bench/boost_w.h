// The Boost baseline of the table benchmarks: a boost::unordered_map with
// workload W's rows in Boost.Interprocess managed shared memory, under one
// interprocess_mutex (what a C++ program reaches for to share a map between
// processes). Its segment is a POSIX shared-memory object named after the
// process; the owner removes it when destroyed, and RemoveLeftovers() cleans
// up after a run that was killed.
#ifndef SHMKIT_BENCH_BOOST_W_H_
#define SHMKIT_BENCH_BOOST_W_H_

#include <unistd.h>

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>
#include <boost/unordered_map.hpp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace shmkit::bench {

namespace bip = boost::interprocess;

inline constexpr size_t kBoostKeyBytes = 16;

struct Key16 {
  char b[kBoostKeyBytes];
  friend bool operator==(const Key16& x, const Key16& y) {
    return std::memcmp(x.b, y.b, kBoostKeyBytes) == 0;
  }
};
struct Key16Hash {
  size_t operator()(const Key16& k) const {
    return std::hash<std::string_view>()(std::string_view(k.b, kBoostKeyBytes));
  }
};
struct BoostRow {
  int64_t n;
  double x;
  uint32_t len;
  char s[64];
};

class BoostW {
 public:
  using Manager = bip::managed_shared_memory::segment_manager;
  using MapAlloc = bip::allocator<std::pair<const Key16, BoostRow>, Manager>;
  using Map = boost::unordered_map<Key16, BoostRow, Key16Hash,
                                   std::equal_to<Key16>, MapAlloc>;

  // An empty map sized for `buckets` in a `bytes`-byte segment.
  BoostW(uint64_t buckets, size_t bytes)
      : name_(absl::StrFormat("shmkit-bench-boost-%d-%d", getpid(), ++count_)) {
    bip::shared_memory_object::remove(name_.c_str());
    shm_ = std::make_unique<bip::managed_shared_memory>(bip::create_only,
                                                        name_.c_str(), bytes);
    mutex_ = shm_->construct<bip::interprocess_mutex>("mutex")();
    map_ = shm_->construct<Map>("map")(
        buckets, Key16Hash(), std::equal_to<Key16>(),
        shm_->get_allocator<std::pair<const Key16, BoostRow>>());
  }
  ~BoostW() {
    shm_.reset();
    bip::shared_memory_object::remove(name_.c_str());
  }
  BoostW(const BoostW&) = delete;
  BoostW& operator=(const BoostW&) = delete;

  static Key16 KeyOf(absl::string_view key) {
    Key16 k{};
    std::memcpy(k.b, key.data(), std::min(key.size(), kBoostKeyBytes));
    return k;
  }
  // Insert or overwrite the whole row.
  void Set(absl::string_view key, const BoostRow& row) {
    const Key16 k = KeyOf(key);
    bip::scoped_lock<bip::interprocess_mutex> lock(*mutex_);
    (*map_)[k] = row;
  }
  bool Get(absl::string_view key, BoostRow* out) {
    const Key16 k = KeyOf(key);
    bip::scoped_lock<bip::interprocess_mutex> lock(*mutex_);
    auto it = map_->find(k);
    if (it == map_->end()) return false;
    *out = it->second;
    return true;
  }
  bool GetN(absl::string_view key, int64_t* n) {
    const Key16 k = KeyOf(key);
    bip::scoped_lock<bip::interprocess_mutex> lock(*mutex_);
    auto it = map_->find(k);
    if (it == map_->end()) return false;
    *n = it->second.n;
    return true;
  }
  bool Incr(absl::string_view key, int64_t delta) {
    const Key16 k = KeyOf(key);
    bip::scoped_lock<bip::interprocess_mutex> lock(*mutex_);
    auto it = map_->find(k);
    if (it == map_->end()) return false;
    it->second.n += delta;
    return true;
  }
  const std::string& name() const { return name_; }

 private:
  static inline int count_ = 0;
  std::string name_;
  std::unique_ptr<bip::managed_shared_memory> shm_;
  bip::interprocess_mutex* mutex_ = nullptr;
  Map* map_ = nullptr;
};

}  // namespace shmkit::bench

#endif  // SHMKIT_BENCH_BOOST_W_H_
