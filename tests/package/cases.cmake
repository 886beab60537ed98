# Install and package tests (bash; .ci/setup installs what they need:
# groff-base and man-db for the man pages, dpkg-dev for cpack's shlibdeps,
# lintian). A program that is missing fails the test, saying so.
set(TCPMSG_PKG_DIR ${CMAKE_CURRENT_LIST_DIR})

# --version, and the script that makes its string.
add_test(NAME install.version
  COMMAND bash ${TCPMSG_PKG_DIR}/version.sh $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg>
          ${PROJECT_VERSION} ${PROJECT_SOURCE_DIR} ${CMAKE_COMMAND}
          ${PROJECT_SOURCE_DIR}/cmake/write_version.cmake)

# The build tree's tcpmsgd and an installed, moved prefix each serve their
# own status page.
add_test(NAME install.prefix
  COMMAND bash ${TCPMSG_PKG_DIR}/install.sh $<TARGET_FILE:tcpmsgd> ${CMAKE_COMMAND}
          ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR})

# Each man page renders without a warning and lists exactly the options of
# its program's --help.
set(TCPMSG_MAN_SECTIONS "NAME,SYNOPSIS,DESCRIPTION,OPTIONS,SIGNALS,EXIT STATUS,FILES,EXAMPLES,SEE ALSO")
add_test(NAME install.man_tcpmsgd
  COMMAND bash ${TCPMSG_PKG_DIR}/man.sh --sections ${TCPMSG_MAN_SECTIONS}
          ${PROJECT_SOURCE_DIR}/man/tcpmsgd.8 $<TARGET_FILE:tcpmsgd>)
add_test(NAME install.man_tcpmsg
  COMMAND bash ${TCPMSG_PKG_DIR}/man.sh --sections ${TCPMSG_MAN_SECTIONS}
          ${PROJECT_SOURCE_DIR}/man/tcpmsg.1 $<TARGET_FILE:tcpmsg> bench probe)
add_test(NAME install.man_transports
  COMMAND bash ${TCPMSG_PKG_DIR}/man.sh
          ${PROJECT_SOURCE_DIR}/man/tcpmsg-transports.1 $<TARGET_FILE:tcpmsg-transports>)
set_tests_properties(install.version install.prefix install.man_tcpmsgd install.man_tcpmsg
  install.man_transports PROPERTIES LABELS install TIMEOUT 120)

# The .deb: built with cpack into a scratch directory, checked with dpkg-deb
# and lintian, extracted and run. Alone (RUN_SERIAL): cpack first brings the
# build up to date, as `make install` does, and a program relinked then must
# not be one another test is starting.
add_test(NAME package.deb
  COMMAND bash ${TCPMSG_PKG_DIR}/package.sh ${CMAKE_BINARY_DIR} ${CMAKE_CPACK_COMMAND}
          ${PROJECT_SOURCE_DIR} ${PROJECT_VERSION})
set_tests_properties(package.deb PROPERTIES LABELS package TIMEOUT 300 RUN_SERIAL TRUE)
