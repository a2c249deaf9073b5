# How every test is registered.  sl_add_test makes COMMAND a CTest test with
# a time limit and labels and, when Valgrind is found and the build is not
# sanitized, registers it again as <name>.valgrind under memcheck, where any
# error or leak fails the run, with five times the time.  PER_POLLER
# registers it once per poller instead (<name>.epoll, <name>.poll,
# <name>.select, SOCKETLOOP_POLLER set to match), each with its Valgrind
# twin.  sl_test builds a CMocka program from SOURCES and registers it so.
#
# sl_add_test(NAME COMMAND cmd args... [TIMEOUT secs] [VALGRIND_TIMEOUT secs]
#             [LABELS l...] [ENVIRONMENT var=value...] [RESOURCE_LOCK r]
#             [PER_POLLER] [NO_VALGRIND])
# sl_test(NAME SOURCES src... [LIBS libs...] [INCLUDES dirs...]
#         [LINK_OPTIONS opts...] and sl_add_test's options but COMMAND)
function(sl_add_test name)
  # PARSE_ARGV keeps the semicolons inside an argument (LUA_PATH's).
  cmake_parse_arguments(PARSE_ARGV 1 T "PER_POLLER;NO_VALGRIND"
    "TIMEOUT;VALGRIND_TIMEOUT;RESOURCE_LOCK" "COMMAND;LABELS;ENVIRONMENT")
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  if(NOT T_VALGRIND_TIMEOUT)
    math(EXPR T_VALGRIND_TIMEOUT "${T_TIMEOUT} * 5")
  endif()
  set(pollers "")
  if(T_PER_POLLER)
    set(pollers epoll poll select)
    if(SL_URING)
      list(APPEND pollers uring)
    endif()
  endif()
  foreach(p "" ${pollers})
    if(T_PER_POLLER AND p STREQUAL "")
      continue() # per poller only, not also without one
    endif()
    set(n ${name})
    set(env "${T_ENVIRONMENT}")
    if(p)
      set(n ${name}.${p})
      list(APPEND env SOCKETLOOP_POLLER=${p})
    endif()
    add_test(NAME ${n} COMMAND ${T_COMMAND})
    set_tests_properties(${n} PROPERTIES TIMEOUT ${T_TIMEOUT}
      LABELS "${T_LABELS}" ENVIRONMENT "${env}")
    if(VALGRIND_EXE AND NOT T_NO_VALGRIND AND NOT SOCKETLOOP_SANITIZE)
      add_test(NAME ${n}.valgrind COMMAND ${SL_VALGRIND_CMD} ${T_COMMAND})
      set_tests_properties(${n}.valgrind PROPERTIES
        TIMEOUT ${T_VALGRIND_TIMEOUT} LABELS "${T_LABELS};valgrind"
        ENVIRONMENT "${env};SL_UNDER_VALGRIND=1")
      if(T_RESOURCE_LOCK)
        set_tests_properties(${n}.valgrind PROPERTIES
          RESOURCE_LOCK ${T_RESOURCE_LOCK})
      endif()
    endif()
    if(T_RESOURCE_LOCK)
      set_tests_properties(${n} PROPERTIES RESOURCE_LOCK ${T_RESOURCE_LOCK})
    endif()
  endforeach()
endfunction()

function(sl_test name)
  set(flags PER_POLLER NO_VALGRIND)
  set(single TIMEOUT VALGRIND_TIMEOUT RESOURCE_LOCK)
  set(multi LABELS ENVIRONMENT)
  cmake_parse_arguments(PARSE_ARGV 1 T "${flags}" "${single}"
    "SOURCES;LIBS;INCLUDES;LINK_OPTIONS;${multi}")
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE socketloop PkgConfig::CMOCKA ${T_LIBS})
  target_link_options(${name} PRIVATE ${T_LINK_OPTIONS})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}
    ${PROJECT_SOURCE_DIR}/tests ${T_INCLUDES})
  target_compile_options(${name} PRIVATE ${SL_WARNINGS})
  # The registration options go on to sl_add_test as they came.
  set(pass "")
  foreach(k ${flags})
    if(T_${k})
      list(APPEND pass ${k})
    endif()
  endforeach()
  foreach(k ${single} ${multi})
    if(DEFINED T_${k})
      list(APPEND pass ${k} ${T_${k}})
    endif()
  endforeach()
  sl_add_test(${name} COMMAND $<TARGET_FILE:${name}> ${pass})
endfunction()
