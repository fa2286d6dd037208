# Redis backend tests (redis/). Each test process starts its own
# redis-server on a free loopback port in a temporary directory
# (redis_server.h) and kills it on exit; a missing redis-server fails the
# tests, never skips them.
add_library(shmkit_redis_test_util STATIC ${CMAKE_CURRENT_LIST_DIR}/redis_server.cc)
target_link_libraries(shmkit_redis_test_util PUBLIC shmkit_test_util shmkit::redis PkgConfig::HIREDIS)
target_include_directories(shmkit_redis_test_util PUBLIC ${CMAKE_CURRENT_LIST_DIR})
shmkit_warnings(shmkit_redis_test_util)

shmkit_test(redis_conformance_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/table_conformance_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/counter_conformance_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/queue_conformance_test.cc
  LIBS shmkit_redis_test_util
  LABELS redis fork
  TIMEOUT 300)
target_include_directories(redis_conformance_test PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../queue)
shmkit_test(redis_fault_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/fault_test.cc
  LIBS shmkit_redis_test_util
  LABELS redis fork
  TIMEOUT 300)
