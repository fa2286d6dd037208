// The wire format of the stream-socket queues (unix, tcp; stream_queue.h).
//
// Sender to listener: a sequence of 16-byte headers, a data frame's header
// followed by its payload:
//
//   offset  size  field
//   0       4     magic   0x31465353 "SSF1": a data frame (a message)
//                         0x31515353 "SSQ1": a credit query (no payload)
//   4       4     length  data: payload bytes, at most the listener's
//                         max_bytes; query: 0
//   8       8     type    data: the message type, > 0; query: 0
//
// Listener to sender: one 16-byte credit report per query, written when the
// listener has taken everything the sender wrote before the query:
//
//   0       4     magic     0x31435353 "SSC1"
//   4       4     zero
//   8       8     consumed  bytes of this connection's sender-to-listener
//                           stream taken so far (frames delivered to the
//                           application, queries answered)
//
// A sender keeps at most its window of bytes the listener has not taken
// (stream_queue.h, "Flow control"); reports tell it how much that is.
//
// Every field is little-endian whatever the host's byte order (tcp peers
// may be other machines), and is encoded and decoded byte by byte rather
// than by copying a struct. Any other magic, a length above max_bytes, or a
// bad type ends the connection. A new format gets new magics ("SSF2"), so
// that a peer that does not understand it refuses it instead of misreading
// it.
#ifndef SHMKIT_IPC_QUEUE_INTERNAL_STREAM_FRAME_H_
#define SHMKIT_IPC_QUEUE_INTERNAL_STREAM_FRAME_H_

#include <cstddef>
#include <cstdint>

namespace shmkit::internal {

inline constexpr uint32_t kStreamFrameMagic = 0x31465353;   // "SSF1"
inline constexpr uint32_t kStreamQueryMagic = 0x31515353;   // "SSQ1"
inline constexpr uint32_t kStreamReportMagic = 0x31435353;  // "SSC1"
inline constexpr size_t kStreamFrameHeaderBytes = 16;
inline constexpr size_t kStreamReportBytes = 16;
// The largest max_message_bytes a stream queue accepts: the length field
// holds 32 bits, and a listener buffers one whole frame per connection.
inline constexpr size_t kStreamMaxMessageBytes = size_t{1} << 30;

// A decoded header or report (host representation; the wire layout is
// above). A report's `consumed` travels in the `type` field's place and its
// zero word in `length`'s.
struct StreamFrameHeader {
  uint32_t magic = 0;
  uint32_t length = 0;
  int64_t type = 0;
};
// Because the wire header is exactly the three fields back to back with no
// padding, the decoded struct has the same size; tests/queue/layout_golden_test.cc pins both.
static_assert(sizeof(StreamFrameHeader) == kStreamFrameHeaderBytes,
              "because the header is magic, length, type with no padding");
static_assert(kStreamReportBytes == kStreamFrameHeaderBytes,
              "because a report reuses the header's three fields");
static_assert(kStreamMaxMessageBytes <= UINT32_MAX,
              "because the length field has 32 bits");

inline void StoreLe32(uint32_t v, unsigned char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}
inline void StoreLe64(uint64_t v, unsigned char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}
inline uint32_t LoadLe32(const unsigned char* in) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | in[i];
  return v;
}
inline uint64_t LoadLe64(const unsigned char* in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | in[i];
  return v;
}

// Writes the header of a frame of `length` payload bytes and `type` into
// `out` (kStreamFrameHeaderBytes bytes).
inline void EncodeStreamFrameHeader(uint32_t length, int64_t type,
                                    unsigned char* out) {
  StoreLe32(kStreamFrameMagic, out);
  StoreLe32(length, out + 4);
  StoreLe64(static_cast<uint64_t>(type), out + 8);
}

// A credit query: a header with the query magic and zeros.
inline void EncodeStreamQuery(unsigned char* out) {
  StoreLe32(kStreamQueryMagic, out);
  StoreLe32(0, out + 4);
  StoreLe64(0, out + 8);
}

// A credit report of `consumed` bytes.
inline void EncodeStreamReport(uint64_t consumed, unsigned char* out) {
  StoreLe32(kStreamReportMagic, out);
  StoreLe32(0, out + 4);
  StoreLe64(consumed, out + 8);
}

// Reads a header (or a report) from `in` (kStreamFrameHeaderBytes bytes). The
// caller checks magic, length and type: the bytes come from another process.
inline StreamFrameHeader DecodeStreamFrameHeader(const unsigned char* in) {
  StreamFrameHeader h;
  h.magic = LoadLe32(in);
  h.length = LoadLe32(in + 4);
  h.type = static_cast<int64_t>(LoadLe64(in + 8));
  return h;
}

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_QUEUE_INTERNAL_STREAM_FRAME_H_
