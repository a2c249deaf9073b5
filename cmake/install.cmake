# The shared library, the generated version header, and every install rule
# of the C library (the Lua module's are in lua/CMakeLists.txt, the man
# pages' in cmake/man.cmake).  Components, one per Debian package:
#   runtime  the shared library itself                 (libsocketloop0)
#   dev      headers, archive, .so link, .pc, CMake, man (libsocketloop-dev)
#   lua      the Lua module                             (lua-socketloop)

# --- Version: project(VERSION) is the only place it is written ----------
# The header, the .pc files, the CMake package, the Debian packages and
# the soname all take it from there.
configure_file(${PROJECT_SOURCE_DIR}/cmake/version.h.in
  ${PROJECT_BINARY_DIR}/include/socketloop/version.h @ONLY)

# --- Shared library ------------------------------------------------------
# Made from the static library's objects (compiled once, position
# independent), so both carry the same code.  Every function outside the
# public headers is hidden (C_VISIBILITY_PRESET, .hidden in the assembly);
# only what GT_API marks is exported, which tests/install checks.  The
# soname follows the major version: libsocketloop.so.0 for 0.x.
add_library(socketloop_shared SHARED $<TARGET_OBJECTS:socketloop>)
set_target_properties(socketloop_shared PROPERTIES
  OUTPUT_NAME socketloop EXPORT_NAME socketloop_shared
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
target_include_directories(socketloop_shared
  PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
         $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
         $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(socketloop_shared PRIVATE Threads::Threads)
# What the .pc files add for a static link: liburing and OpenSSL when they
# are in.  As -l flags, not a Requires.private on libssl: pkg-config would
# then want OpenSSL's .pc (libssl-dev) even for a shared link, and the
# public headers need nothing of OpenSSL.
set(SL_PC_LIBS "")
if(SL_URING)
  target_link_libraries(socketloop_shared PRIVATE ${SL_URING_LIB})
  string(APPEND SL_PC_LIBS " -luring")
endif()
if(SL_TLS)
  target_link_libraries(socketloop_shared PRIVATE OpenSSL::SSL OpenSSL::Crypto)
  string(APPEND SL_PC_LIBS " -lssl -lcrypto")
endif()
# A symbol the library uses and nobody defines is a link error here, not
# a load error in a user's program.  The sanitizers' runtimes are linked
# into the executable only, so their builds leave the check out.
if(NOT SOCKETLOOP_SANITIZE)
  target_link_options(socketloop_shared PRIVATE -Wl,--no-undefined)
endif()
set_target_properties(socketloop PROPERTIES EXPORT_NAME socketloop_static)

# The names a project that adds this tree with add_subdirectory links, the
# same as find_package(socketloop) gives (cmake/socketloopConfig.cmake.in).
option(SOCKETLOOP_USE_STATIC
  "socketloop::socketloop is the static library (default: the shared one)" OFF)
add_library(socketloop::socketloop_static ALIAS socketloop)
add_library(socketloop::socketloop_shared ALIAS socketloop_shared)
if(SOCKETLOOP_USE_STATIC)
  add_library(socketloop::socketloop ALIAS socketloop)
else()
  add_library(socketloop::socketloop ALIAS socketloop_shared)
endif()

# --- Install -------------------------------------------------------------
install(TARGETS socketloop_shared EXPORT socketloopTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT runtime NAMELINK_COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS socketloop EXPORT socketloopTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(FILES ${PROJECT_SOURCE_DIR}/include/socketloop.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
# socketloop/tls.h only when the library has TLS.
if(SL_TLS)
  set(SL_NO_TLS_H "")
else()
  set(SL_NO_TLS_H PATTERN tls.h EXCLUDE)
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/socketloop
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev ${SL_NO_TLS_H})
install(FILES ${PROJECT_BINARY_DIR}/include/socketloop/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/socketloop COMPONENT dev)

set(SL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/socketloop)
install(EXPORT socketloopTargets NAMESPACE socketloop::
  DESTINATION ${SL_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/socketloopConfig.cmake.in
  ${PROJECT_BINARY_DIR}/socketloopConfig.cmake
  INSTALL_DESTINATION ${SL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/socketloopConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/socketloopConfig.cmake
              ${PROJECT_BINARY_DIR}/socketloopConfigVersion.cmake
  DESTINATION ${SL_CMAKE_DIR} COMPONENT dev)

# pkg-config: the paths are written relative to the .pc file's own
# directory (${pcfiledir}), so an installed tree can be moved or installed
# with `cmake --install --prefix` anywhere.  A directory given as an
# absolute path cannot move with the prefix and is written as it is.
set(SL_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE ${SL_PC_DIR})
  set(SL_PC_PREFIX ${CMAKE_INSTALL_PREFIX})
else()
  file(RELATIVE_PATH SL_PC_UP /sl/${SL_PC_DIR} /sl)
  string(REGEX REPLACE "/$" "" SL_PC_UP ${SL_PC_UP})
  set(SL_PC_PREFIX "\${pcfiledir}/${SL_PC_UP}")
endif()
foreach(d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE ${CMAKE_INSTALL_${d}})
    set(SL_PC_${d} ${CMAKE_INSTALL_${d}})
  else()
    set(SL_PC_${d} "\${prefix}/${CMAKE_INSTALL_${d}}")
  endif()
endforeach()
foreach(pc socketloop socketloop-static)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in
    ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc
    DESTINATION ${SL_PC_DIR} COMPONENT dev)
endforeach()
