// RedisQueue: the Queue interface (ipc/queue/queue.h) over a Redis stream
// with a consumer group, for task queues shared by several hosts.
//
//   shmkit::RegisterRedisQueueScheme();          // once, at start-up
//   auto q = shmkit::OpenQueue("redis:url=redis://10.0.0.7:6379/0,name=tasks");
//
// Spec keys (after "redis:"):
//   url=redis://...     the server (redis_options.h); default
//                       redis://127.0.0.1:6379/0
//   name=N | private    the queue's name (1..200 bytes, no space, control
//                       character, brace or comma),
//                       or a fresh random name destroyed by Close() of the
//                       handle that created it (tests, one-off pipelines)
//   max_messages=N      messages the queue holds, delivered-but-unacknowledged
//                       ones included (default 65536); full: TrySend is
//                       Unavailable, SendFor DeadlineExceeded
//   max_bytes=N         largest message (default 1 MiB, at most 512 MiB)
//   open=auto|create|attach, connect_ms=N, timeout_ms=N (per command)
// On attach, max_messages and max_bytes come from Redis; given ones must
// match (FailedPrecondition otherwise).
//
// Keys (hash tag {name}): shmkit:q:{name}:meta (magic, instance id, limits),
// :s (the stream; consumer group "shmkit"), :sp (wake-ups for blocked
// senders).
//
// Delivery is at-least-once, and survives a consumer killed mid-message:
//   - Receive() takes the next message for this handle's connection (the
//     consumer is named after its Redis connection: "c<client id>@<server
//     run id>"); the message stays pending in the group until this thread's
//     next Receive() on the handle, Ack(), or Close() acknowledges it (XACK
//     and XDEL), so "received" means "taken", and the next call means "done".
//   - When a receiver finds the queue empty but messages pending with other
//     consumers, it asks the server which of those consumers are still
//     connected (CLIENT LIST ID; a consumer from before a server restart is
//     gone too). A dead consumer's messages are moved back for delivery,
//     first in line. No timer decides death: a consumer whose connection is
//     open is alive, however slow.
//   - So a message is delivered twice only when its first receiver died or
//     lost its connection before acknowledging it. That replaces queue.h's
//     "never twice" for this backend.
// Order: one sender's messages are received in the order sent (first
// deliveries). A dead consumer's messages are looked for when a receiver
// finds nothing new (and by blocked receivers every 500 ms); once found,
// they are delivered before new ones.
//
// Capabilities: typed_receive false (Any() only), attachable, shared
// channel, no pollable fd, not bidirectional. Remove() deletes the keys:
// blocked calls of every handle return FailedPrecondition within half a
// second (blocking calls wait in slices of at most 500 ms).
#ifndef SHMKIT_REDIS_REDIS_QUEUE_H_
#define SHMKIT_REDIS_REDIS_QUEUE_H_

#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"
#include "shmkit/redis/redis_options.h"

namespace shmkit {

namespace redis_internal {
class Client;
}

// Makes OpenQueue() (ipc/queue/factory.h) understand "redis:" specs.
// Idempotent; thread-safe.
absl::Status RegisterRedisQueueScheme();

class RedisQueue final : public Queue {
 public:
  static absl::StatusOr<std::unique_ptr<Queue>> FromSpec(const QueueSpec& spec);

  ~RedisQueue() override;

  // Acknowledges the message this thread received last (if any), so it
  // is never redelivered. Receive() does this for the previous message.
  absl::Status Ack();

  const std::string& name() const { return name_; }

 protected:
  absl::Status SendImpl(absl::string_view bytes, int64_t type,
                        const WaitMode& wait) override;
  absl::Status ReceiveImpl(Message& out, size_t max_bytes, TypeFilter filter,
                           Truncation truncation,
                           const WaitMode& wait) override;
  absl::Status CloseImpl() override;
  absl::Status RemoveImpl() override;
  absl::StatusOr<QueueStats> StatsImpl() const override;
  std::string Describe() const override;

 private:
  RedisQueue(QueueCapabilities caps, std::shared_ptr<redis_internal::Client> c,
             std::string name, std::string id, uint64_t max_messages,
             bool destroy_on_close);
  absl::Status Wrap(const absl::Status& st) const;
  // Moves the pending messages of consumers that are no longer connected
  // back for delivery; returns how many.
  absl::StatusOr<size_t> ReclaimDead(
      const std::vector<std::string>& consumers);
  std::string TakeUnacked();
  void PutUnacked(std::string id);

  std::shared_ptr<redis_internal::Client> client_;
  const std::string name_;
  const std::string id_;
  const std::string meta_, stream_, space_;
  const uint64_t max_messages_;
  const bool destroy_on_close_;
  std::mutex mu_;
  // Per thread: the id of the message received last and not yet
  // acknowledged.
  absl::flat_hash_map<std::thread::id, std::string> unacked_;
};

}  // namespace shmkit

#endif  // SHMKIT_REDIS_REDIS_QUEUE_H_
