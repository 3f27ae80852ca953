# `cmake --install BUILD --prefix P`: headers, the layer libraries, ctk and a
# package config, so that another project can
#   find_package(compress REQUIRED)            # or COMPONENTS torch
#   target_link_libraries(app PRIVATE compress::compress)
# The static layers carry their dependencies' targets, so the config finds
# the same Debian packages this build used (and LibTorch only when the
# torch layer was built: the `torch` component).
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/compress DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set_target_properties(compress PROPERTIES EXPORT_NAME compress)
install(TARGETS compress EXPORT compressTargets)
install(TARGETS ctk RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT compressTargets NAMESPACE compress:: FILE compressTargets.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/compress)

set(COMPRESS_INSTALL_COMPONENTS core)
if(COMPRESS_HAVE_TORCH)
  list(APPEND COMPRESS_INSTALL_COMPONENTS torch)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/compressConfig.cmake.in
  ${PROJECT_BINARY_DIR}/compressConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/compress)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/compressConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/compressConfig.cmake ${PROJECT_BINARY_DIR}/compressConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/compress)
