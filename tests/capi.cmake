# The C API from C: a C99 program compiled with -pedantic against tollgate.h and linked
# against libtollgate.so (label "unit", so the cpp and asan stages run it). And the shared
# library's exports and NEEDED entries (label "package").
add_executable(capi_test ${CMAKE_CURRENT_SOURCE_DIR}/capi/capi_test.c)
set_target_properties(capi_test PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options(capi_test PRIVATE -pedantic -Wall -Wextra -Werror)
target_link_libraries(capi_test PRIVATE tollgate Threads::Threads)
add_test(NAME capi.c99 COMMAND capi_test)
set_tests_properties(capi.c99 PROPERTIES LABELS unit TIMEOUT 300)

if(NOT TOLLGATE_SANITIZE)
  add_test(NAME package.needed
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package/check_needed.sh $<TARGET_FILE:tollgate>)
  set_tests_properties(package.needed PROPERTIES LABELS package)
endif()
