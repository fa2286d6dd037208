// UniqueFd: the move-only owner of one file descriptor.
#ifndef SHMKIT_IPC_UNIQUE_FD_H_
#define SHMKIT_IPC_UNIQUE_FD_H_

#include <utility>

namespace shmkit {

// Owns a file descriptor and closes it on destruction. Move-only. -1 means
// empty. Fork: the child gets its own copy of the descriptor (and of this
// object); each closes its own.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing.
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }
  // Closes the current descriptor (if any) and takes `fd`. close() errors are
  // ignored: after close the descriptor is gone whatever it returns, and
  // retrying on EINTR could close a descriptor another thread just opened.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_UNIQUE_FD_H_
