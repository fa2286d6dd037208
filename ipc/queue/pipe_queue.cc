#include "shmkit/ipc/queue/pipe_queue.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/queue/internal/pipe_core.h"
#include "shmkit/ipc/queue/internal/spec_reader.h"

namespace shmkit {

namespace {

QueueCapabilities PipeCapabilities(size_t max_message_bytes) {
  QueueCapabilities caps;
  caps.backend = "pipe";
  caps.max_message_bytes = max_message_bytes;
  caps.typed_receive = false;
  caps.bidirectional = false;
  caps.attachable = false;
  caps.pollable_fd = true;
  return caps;
}

}  // namespace

PipeQueue::PipeQueue(internal::PipeCore core, const PipeQueueOptions& options)
    : Queue(PipeCapabilities(core.max_message_bytes())),
      core_(std::make_unique<internal::PipeCore>(std::move(core))),
      description_(absl::StrCat("pipe queue (control segment id ",
                                core_->segment().id(), ")")),
      ignore_sigpipe_(options.ignore_sigpipe) {}

int PipeQueue::ReceiveFd() const { return core_ ? core_->read_fd() : -1; }
int PipeQueue::SendFd() const { return core_ ? core_->write_fd() : -1; }

PipeQueue::~PipeQueue() { (void)Close(); }

absl::StatusOr<std::unique_ptr<PipeQueue>> PipeQueue::Create(
    const PipeQueueOptions& options) {
  SHMKIT_RETURN_IF_ERROR(
      internal::EnsureSigpipeCannotKill(options.ignore_sigpipe));
  internal::PipeSharedOptions shared;
  shared.max_message_bytes = options.max_message_bytes;
  shared.registry_slots = options.registry_slots;
  SHMKIT_ASSIGN_OR_RETURN(
      internal::PipeCore core,
      internal::PipeCore::CreateShared(shared, "pipe queue"));
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return internal::ErrnoStatus(errno, "pipe2(O_CLOEXEC | O_NONBLOCK)");
  }
  core.SetDescriptors(UniqueFd(fds[0]), UniqueFd(fds[1]));
  core.set_spin(options.spin);
  return std::unique_ptr<PipeQueue>(new PipeQueue(std::move(core), options));
}

absl::StatusOr<std::unique_ptr<Queue>> PipeQueue::FromSpec(
    const QueueSpec& spec) {
  internal::SpecReader reader(spec);
  PipeQueueOptions options;
  SHMKIT_ASSIGN_OR_RETURN(
      const std::optional<uint64_t> max,
      reader.Uint("max_bytes", 0, internal::kPipeMaxMessageLimit));
  SHMKIT_ASSIGN_OR_RETURN(
      const std::optional<uint64_t> slots,
      reader.Uint("registry_slots", 1, ProcessRegistry::kMaxSlots));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<uint64_t> spin_us,
                          reader.Uint("spin_us", 0, 1'000'000));
  SHMKIT_RETURN_IF_ERROR(reader.Finish());
  if (spin_us) options.spin = absl::Microseconds(*spin_us);
  if (max) options.max_message_bytes = static_cast<uint32_t>(*max);
  if (slots) options.registry_slots = static_cast<uint32_t>(*slots);
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<PipeQueue> q, Create(options));
  return std::unique_ptr<Queue>(std::move(q));
}

std::string PipeQueue::Describe() const { return description_; }

absl::Status PipeQueue::SendImpl(absl::string_view bytes, int64_t type,
                                 const WaitMode& wait) {
  return core_->Send(bytes, type, wait);
}

absl::Status PipeQueue::ReceiveImpl(Message& out, size_t max_bytes,
                                    TypeFilter filter, Truncation truncation,
                                    const WaitMode& wait) {
  (void)filter;  // Any(): checked by Queue
  return core_->Receive(out, max_bytes, truncation, wait);
}

absl::Status PipeQueue::ApplyRole(QueueRole role) {
  switch (role) {
    case QueueRole::kSender:
      SHMKIT_RETURN_IF_ERROR(
          internal::EnsureSigpipeCannotKill(ignore_sigpipe_));
      core_->CloseReadEnd();
      return absl::OkStatus();
    case QueueRole::kReceiver:
      core_->CloseWriteEnd();
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

absl::Status PipeQueue::CloseImpl() {
  core_->CloseReadEnd();
  core_->CloseWriteEnd();
  core_.reset();
  return absl::OkStatus();
}

absl::Status PipeQueue::RemoveImpl() {
  core_->MarkRemoved();
  return absl::OkStatus();
}

absl::StatusOr<QueueStats> PipeQueue::StatsImpl() const {
  return core_->Stats();
}

}  // namespace shmkit
