# The HTTP config source (Tollgate::http, built only where cpprestsdk is) against a real local
# HTTP server: python3's http.server running tests/http/config_server.py. Label "http".
if(TARGET tollgate_http)
  add_executable(update_http_source_test ${CMAKE_CURRENT_SOURCE_DIR}/http/update_http_source_test.cpp)
  target_link_libraries(update_http_source_test PRIVATE tollgate_http tollgate_static_whole
                                                        tollgate_warnings GTest::gtest_main GTest::gtest)
  target_include_directories(update_http_source_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})  # common/
  target_compile_definitions(update_http_source_test PRIVATE
    TOLLGATE_CONFIG_SERVER="${CMAKE_CURRENT_SOURCE_DIR}/http/config_server.py")
  gtest_discover_tests(update_http_source_test TEST_PREFIX "update." PROPERTIES LABELS http
                       RUN_SERIAL TRUE DISCOVERY_TIMEOUT 60)
endif()
