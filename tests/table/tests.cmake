shmkit_test(table_test
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/schema_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/table_ops_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/bad_input_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/capacity_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/ttl_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/attach_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/golden_test.cc
  LABELS table
  TIMEOUT 300)
target_include_directories(table_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
