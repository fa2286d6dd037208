# WorkerPool. In-process tests (no fork) in pool_test; the tests
# that fork in their own binaries with the label "fork".
shmkit_test(pool_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/respawn_rules_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/worker_pool_options_test.cc
  LABELS pool)
shmkit_test(worker_pool_fork_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_pool_fork_test.cc
  LABELS pool fork
  TIMEOUT 60)
# Makes itself a child subreaper (PR_SET_CHILD_SUBREAPER) to reap the
# workers orphaned by the master it kills: kept apart from other tests.
shmkit_test(worker_pool_master_death_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_pool_master_death_test.cc
  LABELS pool fork
  TIMEOUT 60)
# The pool with a table: a worker killed holding a bucket lock.
shmkit_test(pool_table_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/pool_table_test.cc
  LABELS pool table fork
  TIMEOUT 60)
