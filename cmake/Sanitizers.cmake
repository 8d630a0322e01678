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
  # -O1 as usual for sanitizer builds: a faster build, stack traces that match the source.
  set(CMAKE_CXX_FLAGS_RELWITHDEBINFO "-O1 -g1")
  add_compile_options(-fsanitize=${HAFAB_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${HAFAB_SANITIZE})
  if(HAFAB_SANITIZE MATCHES "undefined")
    # Undefined behaviour is an error that stops the test, not a line in its log.
    add_compile_options(-fno-sanitize-recover=undefined)
    add_link_options(-fno-sanitize-recover=undefined)
  endif()
endif()
