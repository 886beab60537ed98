# The Debian package: `cmake --build build --target package` (or `cpack -G DEB`
# in the build directory) makes tcpmsg_<version>_<arch>.deb from the install
# rules (cmake/install.cmake and those of any subdirectory), so whatever is
# installed is packaged. tests/package/package.sh checks the result, lintian
# included.
set(TCPMSG_MAINTAINER "Seed e3c38880 maintainers <maintainers@users.noreply.r-seed-e3c38880.example>"
    CACHE STRING "Maintainer of the Debian package: Name <email>")
set(TCPMSG_HOMEPAGE "https://r-seed-e3c38880.example/tcpmsg"
    CACHE STRING "Homepage field of the Debian package")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tcpmsg)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${TCPMSG_MAINTAINER}")
# Debian's name, tcpmsg_0.1.0_amd64.deb, with the architecture from dpkg.
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${TCPMSG_HOMEPAGE}")
# The first line is the synopsis; the rest, the extended description.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "TCP message server and client that measure round-trip times
tcpmsgd echoes framed or text messages over TCP, one epoll or io_uring
event loop per worker thread, or a process per client in fork mode. It
serves Prometheus metrics, a health check, a list of connections and a
status page over HTTP, with optional TLS and basic auth.
.
tcpmsg sends messages and prints each reply with its round-trip time;
tcpmsg bench is a load generator (closed or open loop, latency
percentiles, HdrHistogram output); tcpmsg probe measures targets
continuously and exports the results to Prometheus.")
# Depends: from the libraries the binaries link, by dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Binaries without their symbol tables (Debian ships debug symbols apart).
set(CPACK_STRIP_FILES ON)
# 0644 and 0755 on the control files whatever the umask of the build.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Every file installed under /etc becomes a conffile, which dpkg keeps when
# the administrator changed it. Worked out once the files are staged, so a
# configuration file any subdirectory installs is picked up.
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/debian/conffiles.cmake)
# `cmake --build build --target package_source`: the source tree as
# tcpmsg-<version>.tar.gz, without git's files and build directories. Built
# from it, --version is the project version alone.
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_PACKAGE_FILE_NAME tcpmsg-${PROJECT_VERSION})
set(CPACK_SOURCE_IGNORE_FILES "/\\.git" "^${PROJECT_SOURCE_DIR}/build" "^${PROJECT_BINARY_DIR}/")
include(CPack)
