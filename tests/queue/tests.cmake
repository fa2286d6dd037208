# Queue tests (ipc/queue). In-process tests in queue_test; tests that fork in
# their own binaries with the label "fork"; long runs carry "stress".
shmkit_test(queue_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/backends_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/conformance_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/layout_golden_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/spec_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/stream_queue_test.cc
  LABELS queue)
target_include_directories(queue_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
shmkit_test(queue_fork_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/queue_fork_test.cc
  LABELS queue fork
  TIMEOUT 300)
target_include_directories(queue_fork_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
shmkit_test(queue_stream_fork_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/stream_queue_fork_test.cc
  LABELS queue fork
  TIMEOUT 300)
target_include_directories(queue_stream_fork_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
shmkit_test(ring_kill_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/ring_kill_test.cc
  LABELS queue fork
  TIMEOUT 300)
target_include_directories(ring_kill_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
shmkit_test(queue_php_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/php_interop_test.cc
  LABELS queue fork)
target_include_directories(queue_php_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})

# Longer runs of the ring kill tests, under the "stress" label (tools/test.sh
# runs them in the normal build only).
add_test(NAME queue.stress.ring_1000_producer_kills
  COMMAND ring_kill_test
    --gtest_filter=RingKill.ProducersKilledBetweenReserveAndPublish)
set_tests_properties(queue.stress.ring_1000_producer_kills PROPERTIES
  ENVIRONMENT "SHMKIT_RING_KILLS=1000;SHMKIT_RING_STEADY=3;SHMKIT_RING_CONSUMERS=3"
  LABELS "queue;fork;stress" TIMEOUT 300)
add_test(NAME queue.stress.ring_20_consumer_kills
  COMMAND ring_kill_test --gtest_filter=RingKill.AKilledConsumerDoesNotStopTheOthers)
set_tests_properties(queue.stress.ring_20_consumer_kills PROPERTIES
  ENVIRONMENT "SHMKIT_RING_CONSUMER_ROUNDS=20" LABELS "queue;fork;stress"
  TIMEOUT 300)
add_test(NAME queue.stress.ring_1000_consumer_kill_storm
  COMMAND ring_kill_test --gtest_filter=RingKill.AConsumerKillStormLosesNoAcknowledgedMessage)
set_tests_properties(queue.stress.ring_1000_consumer_kill_storm PROPERTIES
  ENVIRONMENT "SHMKIT_RING_STORM_KILLS=1000" LABELS "queue;fork;stress"
  TIMEOUT 300)
