# Sanitizer and fuzzing builds (fuzz/README.md). The default gcc build is unaffected.
#   -DHAFAB_SANITIZE=address,undefined   every target with ASan+UBSan (UB aborts the test)
#   -DHAFAB_SANITIZE=thread              every target with TSan
#   -DHAFAB_FUZZ=ON                      the libFuzzer targets in fuzz/ (clang only), with
#                                        ASan+UBSan unless HAFAB_SANITIZE says otherwise
option(HAFAB_FUZZ "Build the libFuzzer targets in fuzz/ (needs CC=clang CXX=clang++)" OFF)
set(HAFAB_SANITIZE "" CACHE STRING "Sanitizers for every target: address,undefined or thread")

if(HAFAB_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "HAFAB_FUZZ=ON needs clang (libFuzzer): configure with CXX=clang++")
  endif()
  if(HAFAB_SANITIZE STREQUAL "")
    set(HAFAB_SANITIZE "address,undefined")
  endif()
  # Coverage instrumentation for every library the fuzz targets link.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

if(NOT HAFAB_SANITIZE STREQUAL "")
  # ASan+UBSan at -O0: on 2 cores its build took 866 s at -O1 and takes 492 s at -O0, for
  # 44 s more in its unit tests (CI's time is the build's). TSan at -O1: the threaded tests
  # time their peers, and -O0 would slow them several times. Stack traces match the source.
  if(HAFAB_SANITIZE MATCHES "address")
    set(CMAKE_CXX_FLAGS_RELWITHDEBINFO "-O0 -g1")
  else()
    set(CMAKE_CXX_FLAGS_RELWITHDEBINFO "-O1 -g1")
  endif()
  add_compile_options(-fsanitize=${HAFAB_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${HAFAB_SANITIZE})
  if(HAFAB_SANITIZE MATCHES "undefined")
    # Undefined behaviour is an error that stops the test, not a line in its log.
    add_compile_options(-fno-sanitize-recover=undefined)
    add_link_options(-fno-sanitize-recover=undefined)
  endif()
endif()
