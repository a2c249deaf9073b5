# Debian packages through CPack, one per install component:
#   libsocketloop0     runtime  the shared library (soname libsocketloop.so.0)
#   libsocketloop-dev  dev      headers, static archive, .pc, CMake package, man 3
#   lua-socketloop     lua      the Lua module for each Lua it was built for
# tools/pkg/build-debs.sh configures a tree for /usr and runs `cpack -G DEB`.
set(SL_SO ${PROJECT_VERSION_MAJOR})
set(SOCKETLOOP_DEB_MAINTAINER "socketloop developers <socketloop@localhost>"
  CACHE STRING "Maintainer field of the Debian packages")
set(SOCKETLOOP_DEB_RELEASE 1 CACHE STRING
  "Debian revision of the packages (the part after the version's dash)")
set(SL_DEB_VERSION ${PROJECT_VERSION}-${SOCKETLOOP_DEB_RELEASE})

set(CPACK_PACKAGE_NAME socketloop)
set(CPACK_PACKAGE_VENDOR socketloop)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# No CPACK_PACKAGE_DESCRIPTION_SUMMARY: CPack would put that one summary
# above every package's description; the first line of each component's
# description below is its summary instead.
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
if(SL_LUA_INSTALLED)
  list(APPEND CPACK_COMPONENTS_ALL lua)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${SOCKETLOOP_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${SOCKETLOOP_DEB_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# dpkg-shlibdeps writes each package's libc6 dependency from the symbols
# its ELF files use.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)

set(SL_DEB_ABOUT
"socketloop runs every TCP connection in its own green thread: a read or
write that would block parks the green thread on the event loop (epoll,
poll or select) instead of blocking the process.")

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libsocketloop${SL_SO})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_GENERATE_SHLIBS_POLICY "=")
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
"green threads and TCP sockets for C (shared library)
${SL_DEB_ABOUT}

This package holds the shared library.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libsocketloop-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# The static library and the CMake package need the libraries the build
# used: OpenSSL (find_dependency) and liburing (-luring in a static link).
set(SL_DEB_DEV_DEPS "libsocketloop${SL_SO} (= ${SL_DEB_VERSION}), libc6-dev | libc-dev")
if(SL_TLS)
  string(APPEND SL_DEB_DEV_DEPS ", libssl-dev")
endif()
if(SL_URING)
  string(APPEND SL_DEB_DEV_DEPS ", liburing-dev")
endif()
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "${SL_DEB_DEV_DEPS}")
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "pkg-config, cmake")
set(CPACK_COMPONENT_DEV_DESCRIPTION
"green threads and TCP sockets for C (development files)
${SL_DEB_ABOUT}

This package holds the headers, the static library, the pkg-config files
(socketloop, socketloop-static), the CMake package (find_package) and the
manual pages (man 3 socketloop).")

set(lua_provides "")
set(lua_recommends "")
foreach(v ${SL_LUA_INSTALLED})
  if(NOT v STREQUAL "jit")
    list(APPEND lua_provides lua${v}-socketloop)
    list(PREPEND lua_recommends lua${v})   # the newest first
  endif()
endforeach()
if("jit" IN_LIST SL_LUA_INSTALLED)
  list(APPEND lua_recommends luajit)
endif()
list(JOIN lua_provides ", " lua_provides)
list(JOIN lua_recommends " | " lua_recommends)
string(REPLACE "jit" "LuaJIT" SL_LUA_LIST "${SL_LUA_INSTALLED}")
string(REPLACE ";" ", " SL_LUA_LIST "${SL_LUA_LIST}")
set(CPACK_DEBIAN_LUA_PACKAGE_NAME lua-socketloop)
set(CPACK_DEBIAN_LUA_PACKAGE_SECTION interpreters)
set(CPACK_DEBIAN_LUA_PACKAGE_PROVIDES "${lua_provides}")
# A module is useful to an embedding program without any interpreter, so
# the interpreters are recommended, not required.
set(CPACK_DEBIAN_LUA_PACKAGE_RECOMMENDS "${lua_recommends}")
set(CPACK_COMPONENT_LUA_DESCRIPTION
"green threads and TCP sockets for Lua (socketloop module)
${SL_DEB_ABOUT}

This package holds require'socketloop' for Lua ${SL_LUA_LIST}; the C
library is linked into the module.")

# Debian wants a copyright file in each package's documentation directory.
foreach(comp runtime dev lua)
  string(TOUPPER ${comp} COMP)
  if(comp IN_LIST CPACK_COMPONENTS_ALL)
    install(FILES ${PROJECT_SOURCE_DIR}/LICENSE
      DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${CPACK_DEBIAN_${COMP}_PACKAGE_NAME}
      RENAME copyright COMPONENT ${comp})
  endif()
endforeach()

include(CPack)
