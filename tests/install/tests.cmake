# Installs the build tree into a scratch prefix, then builds a tiny consumer
# project against it twice: with find_package(shmkit) and with pkg-config.
add_test(NAME install.find_package_and_pkg_config
  COMMAND ${CMAKE_COMMAND}
    -DSHMKIT_BINARY_DIR=${PROJECT_BINARY_DIR}
    -DCONSUMER_SOURCE_DIR=${CMAKE_CURRENT_LIST_DIR}/consumer
    -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/install_test
    -DCXX=${CMAKE_CXX_COMPILER}
    -DSANITIZE=${SHMKIT_SANITIZE}
    -P ${CMAKE_CURRENT_LIST_DIR}/run_consumer.cmake)
set_tests_properties(install.find_package_and_pkg_config PROPERTIES
  LABELS install TIMEOUT 300)
