// The framing of a worker's result channel (a SOCK_STREAM socketpair).
//
//   frame  := header payload
//   header := uint32 length, uint32 check   (8 bytes, little-endian)
//   check  := ~length
//
// The check word catches a stream that lost its framing (a write that did
// not come from WorkerContext::Send): the master closes such a channel
// rather than deliver garbage. A frame is delivered only when all of its
// payload arrived; bytes of a frame cut short by the worker's death are
// discarded when the worker is reaped.
#ifndef SHMKIT_IPC_POOL_INTERNAL_FRAME_H_
#define SHMKIT_IPC_POOL_INTERNAL_FRAME_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

namespace shmkit::internal {

static_assert(std::endian::native == std::endian::little,
              "frames are written in native order by a worker and read by "
              "its master on the same host");

struct FrameHeader {
  uint32_t length;
  uint32_t check;
};
static_assert(sizeof(FrameHeader) == 8, "the header is two 32-bit words");

inline FrameHeader MakeFrameHeader(uint32_t length) {
  return FrameHeader{length, ~length};
}

// The payload length of the frame whose header is at `bytes` (at least
// sizeof(FrameHeader) bytes), or nullopt when the check word does not match.
inline std::optional<uint32_t> ParseFrameHeader(const char* bytes) {
  FrameHeader h;
  std::memcpy(&h, bytes, sizeof(h));
  if (h.check != ~h.length) return std::nullopt;
  return h.length;
}

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_POOL_INTERNAL_FRAME_H_
