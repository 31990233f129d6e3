# Installation of the package metadata: the CMake package config
# (nbioConfig.cmake, its version file, the exported targets) and the
# pkg-config file nbio.pc. The libraries and headers themselves are installed
# by src/CMakeLists.txt into the export set nbioTargets.
include(CMakePackageConfigHelpers)

set(NBIO_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/nbio
    CACHE STRING "Where nbioConfig.cmake is installed (relative to the prefix)")

install(EXPORT nbioTargets NAMESPACE nbio:: DESTINATION ${NBIO_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/nbioConfig.cmake.in
  ${PROJECT_BINARY_DIR}/nbioConfig.cmake
  INSTALL_DESTINATION ${NBIO_INSTALL_CMAKEDIR})
# While the version is 0.x, a minor version bump may break the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nbioConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/nbioConfig.cmake ${PROJECT_BINARY_DIR}/nbioConfigVersion.cmake
  DESTINATION ${NBIO_INSTALL_CMAKEDIR})

# pkg-config: what a static link needs beyond libnbio.a. Add a module here
# when the library starts to depend on it (zlib: HTTP content decoding).
set(NBIO_PC_REQUIRES_PRIVATE "libcares libssl libcrypto zlib")
set(NBIO_PC_LIBS_PRIVATE "-pthread")
# The .pc file finds the prefix relative to itself, so an installed tree can
# be moved (and `cmake --install --prefix DIR` works).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(NBIO_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(NBIO_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(NBIO_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _nbio_up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" _nbio_up "${_nbio_up}")
  set(NBIO_PC_PREFIX "\${pcfiledir}/${_nbio_up}")
  set(NBIO_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(NBIO_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  unset(_nbio_up)
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/nbio.pc.in ${PROJECT_BINARY_DIR}/nbio.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/nbio.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
