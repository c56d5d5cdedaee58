# Tests against a real Redis Cluster (3 primaries, 3 replicas; tools/redis_server/
# redis_cluster.h), started and stopped by the tests. Label "cluster".
file(GLOB TOLLGATE_CLUSTER_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cluster/*_test.cpp)
foreach(src IN LISTS TOLLGATE_CLUSTER_TESTS)
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE tollgate_static tollgate_redis_fixture tollgate_warnings
                                        GTest::gmock_main GTest::gmock GTest::gtest)
  if(name STREQUAL "cluster_store_behaviour_test")
    # One cluster for the whole suite (six servers take seconds to join): one process.
    add_test(NAME cluster.store_behaviour COMMAND ${name})
    set_tests_properties(cluster.store_behaviour PROPERTIES LABELS cluster RUN_SERIAL TRUE
                                                            TIMEOUT 120)
  else()
    # Six servers per test and timing-sensitive checks: one binary at a time.
    gtest_discover_tests(${name} PROPERTIES LABELS cluster RUN_SERIAL TRUE DISCOVERY_TIMEOUT 60)
  endif()
endforeach()
