# compress_layer(NAME SOURCES... DEPS ...): one static library per layer,
# compress::NAME in this tree and, once installed, in find_package(compress)
# (the install rules and the package config are in cmake/CompressInstall.cmake).
include(GNUInstallDirs)
function(compress_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(compress_${name} STATIC ${L_SOURCES})
  add_library(compress::${name} ALIAS compress_${name})
  set_target_properties(compress_${name} PROPERTIES EXPORT_NAME ${name})
  target_include_directories(compress_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(compress_${name} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
  install(TARGETS compress_${name} EXPORT compressTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
endfunction()
