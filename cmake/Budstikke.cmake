# CMake helpers shared by every module.
#
#   budstikke_module(NAME SOURCES ... [DEPS ...])
#       a static library for one module; include paths are rooted at the repository,
#       so a module is included as "engine/bus/bus.hpp".
#   budstikke_test(NAME SOURCES ... [DEPS ...] [LABEL unit|integration|bench] [TIMEOUT s]
#                  [ENVIRONMENT ...])
#       a GoogleTest executable registered with CTest under a label.

set(BUDSTIKKE_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
    -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
if(BUDSTIKKE_WERROR)
  list(APPEND BUDSTIKKE_WARNINGS -Werror)
endif()

function(budstikke_compile_options target)
  target_compile_options(${target} PRIVATE ${BUDSTIKKE_WARNINGS})
  if(BUDSTIKKE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
  if(BUDSTIKKE_FUZZ)
    # Coverage instrumentation for libFuzzer in every library, not only the fuzz targets.
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
  endif()
endfunction()

function(budstikke_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${M_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/generated)
  target_link_libraries(${name} PUBLIC ${M_DEPS})
  budstikke_compile_options(${name})
endfunction()

function(budstikke_executable name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${M_SOURCES})
  target_link_libraries(${name} PRIVATE ${M_DEPS})
  budstikke_compile_options(${name})
endfunction()

include(GoogleTest)

# Every GoogleTest case becomes its own CTest test (so counts are per case), discovered when
# the tests run (PRE_TEST), labelled, with the repository paths in its environment.
function(budstikke_test name)
  cmake_parse_arguments(T "" "LABEL;TIMEOUT" "SOURCES;DEPS;PROPERTIES" ${ARGN})
  if(NOT T_LABEL)
    set(T_LABEL unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_DEPS} GTest::gtest GTest::gtest_main)
  budstikke_compile_options(${name})
  # Repository paths are compiled in (tests may still override them by environment).
  target_compile_definitions(${name} PRIVATE
    BUDSTIKKE_SOURCE_DIR_DEFAULT="${PROJECT_SOURCE_DIR}"
    BUDSTIKKE_BINARY_DIR_DEFAULT="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    EXTRA_ARGS --gtest_color=no
    PROPERTIES LABELS ${T_LABEL} TIMEOUT ${T_TIMEOUT} ${T_PROPERTIES})
endfunction()
