# Run by CPack (CPACK_PRE_BUILD_SCRIPTS) once the package's files are staged:
# every file staged under etc/ goes into a Debian `conffiles` control file, so
# dpkg keeps an administrator's changes to it on upgrade and asks before
# replacing them. Looking at what was staged, rather than at a list kept
# here, takes in the configuration files any subdirectory installs.
file(GLOB_RECURSE etc_files LIST_DIRECTORIES false RELATIVE "${CPACK_TEMPORARY_DIRECTORY}"
     "${CPACK_TEMPORARY_DIRECTORY}/etc/*")
if(etc_files)
  list(SORT etc_files)
  list(TRANSFORM etc_files PREPEND "/")
  list(JOIN etc_files "\n" text)
  set(conffiles "${CPACK_TOPLEVEL_DIRECTORY}/conffiles")
  file(WRITE "${conffiles}" "${text}\n")
  # CPack reads this variable after the pre-build scripts, when it writes
  # the package's control files.
  list(APPEND CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${conffiles}")
  message(STATUS "conffiles: ${etc_files}")
endif()
