# Worker pool (included by ipc/CMakeLists.txt).
target_sources(shmkit_ipc PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/internal/master_pipe.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/respawn_rules.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/result_channel.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/worker_spawn.cc
  ${CMAKE_CURRENT_LIST_DIR}/worker_pool.cc
)
