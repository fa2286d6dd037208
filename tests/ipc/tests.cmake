shmkit_test(ipc_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/errors_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/event_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/key_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/segment_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/semaphore_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/sysv_objects_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/registry_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/owner_lock_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/counter_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/layout_golden_test.cc
  LABELS ipc)
shmkit_test(ipc_fork_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/segment_fork_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/counter_fork_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/lock_fork_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/event_fork_test.cc
  LABELS ipc fork
  TIMEOUT 300)
