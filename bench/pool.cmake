# Worker pool and Event costs (bench/pool_bench.cc).
shmkit_bench(pool_bench pool_bench.cc)
