# Message queues (ipc/queue): one interface over System V queues, pipes,
# FIFOs, socket pairs, a shared-memory ring and stream sockets (unix, tcp).
# Included by ipc/CMakeLists.txt.
target_sources(shmkit_ipc PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/factory.cc
  ${CMAKE_CURRENT_LIST_DIR}/fifo_queue.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/orphan_reaper.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/pipe_core.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/stream_endpoint.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/stream_listener.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/stream_queue_core.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/stream_sender.cc
  ${CMAKE_CURRENT_LIST_DIR}/pipe_queue.cc
  ${CMAKE_CURRENT_LIST_DIR}/queue.cc
  ${CMAKE_CURRENT_LIST_DIR}/ring_queue.cc
  ${CMAKE_CURRENT_LIST_DIR}/socketpair_queue.cc
  ${CMAKE_CURRENT_LIST_DIR}/spec.cc
  ${CMAKE_CURRENT_LIST_DIR}/stream_queue.cc
  ${CMAKE_CURRENT_LIST_DIR}/sysv_queue.cc
)
