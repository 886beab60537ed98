/* version: the version string every program prints for --version. Its
 * source is generated at build time (cmake/write_version.cmake) from the
 * project version in CMakeLists.txt and, in a git checkout, from
 * `git describe --always --dirty`, so it names the commit actually built.
 */
#ifndef TCPMSG_VERSION_H
#define TCPMSG_VERSION_H

/* "0.1.0", or "0.1.0 (git a0fe14a-dirty)" when built from a git checkout.
 * Static storage, never freed. */
extern const char tcpmsg_version[];

#endif
