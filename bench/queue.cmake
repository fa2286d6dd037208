# Queue benchmarks (bench/queue_bench.cc): every backend against its raw
# system calls, reported as ratios.
shmkit_bench(queue_bench ${CMAKE_CURRENT_LIST_DIR}/queue_bench.cc)
