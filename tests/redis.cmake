# Tests against real redis-server processes (started and stopped by the tests' fixture,
# tools/redis_server/redis_server.h). Label "redis".
# (The fixture, tools/redis_server, is shared with the simulator.)

file(GLOB TOLLGATE_REDIS_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/redis/*_test.cpp)
foreach(src IN LISTS TOLLGATE_REDIS_TESTS)
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE tollgate_static_whole tollgate_redis_fixture tollgate_faults
                                        tollgate_warnings
                                        GTest::gmock_main GTest::gmock GTest::gtest)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})  # common/
  # Servers and timing-sensitive checks: one binary at a time. *_concurrency_test.cpp files
  # are labelled "concurrency" instead, so that scripts/test also runs them under TSan.
  set(label redis)
  if(name MATCHES "_concurrency_test$")
    set(label concurrency)
  endif()
  set(prefix "")
  if(name MATCHES "^update")
    set(prefix "update.")  # tooling finds live updates' suites by name
  endif()
  gtest_discover_tests(${name} TEST_PREFIX "${prefix}" PROPERTIES LABELS ${label} RUN_SERIAL TRUE
                       DISCOVERY_TIMEOUT 60)
endforeach()

# The multi-process guarantee test starts this driver, one process per instance.
add_executable(tollgate_guarantee_driver ${CMAKE_CURRENT_SOURCE_DIR}/redis/guarantee_driver.cpp)
target_link_libraries(tollgate_guarantee_driver PRIVATE tollgate_static_whole tollgate_faults
                                                        tollgate_warnings)
target_include_directories(tollgate_guarantee_driver PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(guarantee_processes_test
  PRIVATE TOLLGATE_DRIVER_PATH="$<TARGET_FILE:tollgate_guarantee_driver>")
add_dependencies(guarantee_processes_test tollgate_guarantee_driver)

# The previous release's lease script, run beside this one's on the same keys.
target_compile_definitions(schema_upgrade_test PRIVATE
  TOLLGATE_LAYOUT1_LEASE_SCRIPT="${CMAKE_CURRENT_SOURCE_DIR}/redis/previous/lease_96e085a.lua"
  TOLLGATE_LAYOUT2_LEASE_SCRIPT="${CMAKE_CURRENT_SOURCE_DIR}/redis/previous/lease_2f7f325.lua")
# The operator's CLI (tools/ctl) runs as a process against the tests' redis-server.
target_compile_definitions(ctl_test PRIVATE TOLLGATE_CTL="$<TARGET_FILE:tollgate_ctl>")
add_dependencies(ctl_test tollgate_ctl)
