// CpuRelax: the instruction a spinning thread runs between checks of a word
// another CPU will change. It tells the core that this is a spin loop: it
// saves power, yields the core's resources to a sibling hyperthread, and on
// x86 avoids the memory-order flush when the awaited store arrives.
#ifndef SHMKIT_IPC_INTERNAL_CPU_RELAX_H_
#define SHMKIT_IPC_INTERNAL_CPU_RELAX_H_

namespace shmkit::internal {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  // No spin hint on this architecture: a compiler barrier keeps the loop
  // re-reading memory.
  asm volatile("" ::: "memory");
#endif
}

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_CPU_RELAX_H_
