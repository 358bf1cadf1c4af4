# Run by ctest (worker_sdk_packaging_test): proves that after
# `cmake --install`, an unrelated project finds the SDK with
# find_package(spool CONFIG) and links spool::worker_sdk and
# spool::worker_metrics; that every installed header compiles on its own
# through those targets; and that the SDK's examples build, all in strict
# C++17 (the standard the SDK promises).
# Inputs: BUILD_DIR, CONSUMER_DIR, EXAMPLES_DIR, WORK_DIR, GENERATOR,
# CXX_COMPILER, SANITIZER_FLAGS (a sanitizer build's -fsanitize flags).
foreach(var BUILD_DIR CONSUMER_DIR EXAMPLES_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "packaging_test.cmake: ${var} not set")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(JOIN " " cmd ${ARGN})
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/consumer-build)
file(REMOVE_RECURSE ${WORK_DIR})

# Only the SDK's component: the rest of the tree need not be installable.
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix}
    --component spool_sdk)
foreach(f include/spool/worker.h include/spool/client.h
          include/spool/prometheus.h
          include/spool/proto/spool/v1/spool.pb.h)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
file(GLOB_RECURSE config_files ${prefix}/*/spoolConfig.cmake)
if(NOT config_files)
  message(FATAL_ERROR "spoolConfig.cmake not installed under ${prefix}")
endif()

foreach(f include/spool/proto/grpc/health/v1/health.pb.h
          include/spool/proto/grpc/health/v1/health.grpc.pb.h)
  if(EXISTS ${prefix}/${f})
    message(FATAL_ERROR "installed, but not part of the SDK: ${f}")
  endif()
endforeach()

# One translation unit per installed header, including only that header as
# a consumer would spell it (relative to include/).
file(GLOB_RECURSE installed_headers RELATIVE ${prefix}/include
  ${prefix}/include/*.h)
list(LENGTH installed_headers header_count)
if(header_count LESS 7)
  message(FATAL_ERROR "too few installed headers: ${installed_headers}")
endif()
foreach(h ${installed_headers})
  string(MAKE_C_IDENTIFIER ${h} name)
  file(WRITE ${WORK_DIR}/headers/${name}.cc "#include \"${h}\"\n")
endforeach()

set(compiler_arg)
if(CXX_COMPILER)
  set(compiler_arg -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
endif()
# A sanitizer build's libraries need the same runtime in the consumer.
if(SANITIZER_FLAGS)
  string(REPLACE ";" " " flags "${SANITIZER_FLAGS}")
  list(APPEND compiler_arg "-DCMAKE_CXX_FLAGS=${flags}"
    "-DCMAKE_EXE_LINKER_FLAGS=${flags}")
endif()
run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${build} -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release ${compiler_arg}
    -DSPOOL_HEADER_SOURCES_DIR=${WORK_DIR}/headers
    -DSPOOL_EXAMPLES_DIR=${EXAMPLES_DIR})
run(${CMAKE_COMMAND} --build ${build})
run(${build}/spool_consumer)
if(NOT run_output MATCHES "spool consumer ok")
  message(FATAL_ERROR "unexpected consumer output: ${run_output}")
endif()
message(STATUS "packaging ok (${header_count} headers): ${run_output}")
