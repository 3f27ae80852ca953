# compress_layer(NAME SOURCES... DEPS ...): one static library per layer,
# exported as compress::NAME, with the shared public include directory.
function(compress_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(compress_${name} STATIC ${L_SOURCES})
  add_library(compress::${name} ALIAS compress_${name})
  target_include_directories(compress_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
  target_link_libraries(compress_${name} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
endfunction()
