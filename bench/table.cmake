# table_bench: the generated-key benchmarks (table_bench.cc) and the user
# access pattern with the Boost.Interprocess map beside it
# (table_user_bench.cc). libboost-dev is one of the packages tools/common.sh
# installs: the Boost baseline is part of every run.
if(NOT Boost_FOUND)
  message(FATAL_ERROR "table_bench needs Boost (Debian: libboost-dev, which "
                      "tools/common.sh installs)")
endif()
shmkit_bench(table_bench
  ${CMAKE_CURRENT_LIST_DIR}/table_bench.cc
  ${CMAKE_CURRENT_LIST_DIR}/table_user_bench.cc)
target_link_libraries(table_bench PRIVATE Boost::headers rt)
