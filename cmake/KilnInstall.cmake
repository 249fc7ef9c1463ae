# `cmake --install build --prefix P`: the kiln libraries, the headers of the
# public API (<kiln/kiln.h> and the tree it includes, under P/include/kiln/
# with the source tree's layout, so "runtime/Tensor.h" keeps working), the
# tools, and the CMake package: find_package(Kiln) + Kiln::kiln.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Kiln::kiln: what an outside program links (the API and everything below it).
add_library(kiln_api INTERFACE)
set_target_properties(kiln_api PROPERTIES EXPORT_NAME kiln)
target_link_libraries(kiln_api INTERFACE kiln_compiler)
add_library(Kiln::kiln ALIAS kiln_api)

set(KILN_EXPORTED_LIBRARIES kiln_api kiln_compiler kiln_passes kiln_frontend kiln_codegen kiln_ir kiln_runtime)
if(KILN_ENABLE_CPU_BACKEND)
  list(APPEND KILN_EXPORTED_LIBRARIES kiln_codegen_cpu kiln_runtime_cpu)
endif()
if(KILN_ENABLE_CUDA)
  list(APPEND KILN_EXPORTED_LIBRARIES kiln_codegen_cuda kiln_runtime_cuda)
endif()
# A sanitized build's libraries need the sanitizer runtimes in whatever links them.
if(KILN_SANITIZE)
  foreach(library ${KILN_EXPORTED_LIBRARIES})
    target_link_options(${library} INTERFACE ${KILN_SANITIZE_FLAGS})
  endforeach()
endif()
install(TARGETS ${KILN_EXPORTED_LIBRARIES} EXPORT KilnTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

# The tools find libMLIR/libLLVM where they were linked from.
set_target_properties(kiln kiln-opt PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS kiln kiln-opt RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES include/kiln/kiln.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln)
foreach(dir runtime ir frontend passes compiler)
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln/${dir}
    FILES_MATCHING PATTERN "*.h" PATTERN "*.def")
endforeach()

set(KILN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Kiln)
install(EXPORT KilnTargets NAMESPACE Kiln:: DESTINATION ${KILN_CMAKE_DIR})
# What the static libraries' private dependencies need in the consumer.
set(KILN_CONFIG_CPU_BACKEND ${KILN_ENABLE_CPU_BACKEND})
set(KILN_CONFIG_MLIR_DIR "${MLIR_DIR}")
configure_package_config_file(cmake/KilnConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/KilnConfig.cmake INSTALL_DESTINATION ${KILN_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/KilnConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/KilnConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/KilnConfigVersion.cmake DESTINATION ${KILN_CMAKE_DIR})
