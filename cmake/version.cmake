# The version --version prints: the project version (project() in CMakeLists.txt),
# plus `git describe` in a checkout. A target that always runs
# (cmake/write_version.cmake) makes the one generated source of tcpmsg_version;
# the script rewrites it only when the text changed, so an unchanged tree
# recompiles nothing.
find_package(Git QUIET)
set(TCPMSG_VERSION_SOURCE ${CMAKE_BINARY_DIR}/generated/version.c)
add_custom_target(tcpmsg_version
  COMMAND ${CMAKE_COMMAND} -DVERSION=${PROJECT_VERSION} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
          -DGIT=${GIT_EXECUTABLE} -DOUT=${TCPMSG_VERSION_SOURCE}
          -P ${PROJECT_SOURCE_DIR}/cmake/write_version.cmake
  BYPRODUCTS ${TCPMSG_VERSION_SOURCE}
  COMMENT "Checking the version string"
  VERBATIM)
target_sources(tcpmsg_core PRIVATE ${TCPMSG_VERSION_SOURCE})
add_dependencies(tcpmsg_core tcpmsg_version)

# The project version alone, known at configure time: the start-up log and
# the version label of tcpmsg_build_info.
target_compile_definitions(tcpmsg_core PRIVATE TCPMSG_VERSION="${PROJECT_VERSION}")
