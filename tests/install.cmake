# Package tests: the installed CMake package works for a consumer, and libtollgate.so
# exports the API and nothing else. Not under sanitizers (a consumer built without them
# could not load a sanitized library).
if(NOT TOLLGATE_SANITIZE)
  add_test(NAME package.consumer
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package/consumer_test.sh
                   ${CMAKE_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/consumer)
  add_test(NAME package.exports
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package/check_exports.sh $<TARGET_FILE:tollgate>)
  set_tests_properties(package.consumer package.exports PROPERTIES LABELS package)
  set_tests_properties(package.consumer PROPERTIES TIMEOUT 300)
endif()
