# Where `cmake --install` (and the Debian package, cmake/package.cmake) puts
# each file, with the GNU directory names (bin/, share/, share/man/, ...):
#   bin/                     tcpmsgd, tcpmsg, tcpmsg-transports
#   share/tcpmsg/web/        the status page
#   share/tcpmsg/dashboards/ Grafana dashboards, Prometheus config and alert rules
#   share/doc/tcpmsg/        README.md, docs/, copyright, changelog.gz
#   share/man/man1, man8     the manual pages, gzipped
include(GNUInstallDirs)

# The status page's files, found by tcpmsgd at start-up without a flag
# (src/webroot.c): a binary in the build tree's bin/ takes the source
# tree's web/; any other takes the web/ installed beside it, reached from its
# own directory by this relative path, so an installed tree still works after
# it is moved or unpacked elsewhere (a .deb extracted into a scratch root).
file(RELATIVE_PATH TCPMSG_WEB_FROM_BIN ${CMAKE_INSTALL_FULL_BINDIR}
     ${CMAKE_INSTALL_FULL_DATADIR}/tcpmsg/web)
target_compile_definitions(tcpmsg_core PRIVATE
  TCPMSG_SOURCE_WEB_ROOT="${PROJECT_SOURCE_DIR}/web"
  TCPMSG_BUILD_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}"
  TCPMSG_WEB_FROM_BIN="${TCPMSG_WEB_FROM_BIN}")

install(TARGETS tcpmsgd tcpmsg tcpmsg-transports RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES web/index.html web/app.js web/style.css web/probe.html web/probe.js web/fetch.js
        DESTINATION ${CMAKE_INSTALL_DATADIR}/tcpmsg/web)

install(FILES dashboards/README.md dashboards/grafana-tcpmsg.json
              dashboards/grafana-tcpmsg-probe.json dashboards/grafana-tcpmsg-fleet.json
              dashboards/prometheus.yml
              dashboards/tcpmsg-alerts.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/tcpmsg/dashboards)

# docs/ stays a folder beside README.md, so the README's links still work.
install(FILES README.md cmake/debian/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES docs/ARCHITECTURE.md docs/CLIENT.md docs/METRICS.md docs/PROTOCOL.md docs/STAGES.md
              docs/web-config.example.yml
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)

# Manual pages and the changelog are installed gzipped, as man(1) reads them
# and Debian expects them: -9 is the best compression, -n leaves the name
# and time out of the header so the same source makes the same bytes.
set(TCPMSG_GZIPPED "")
function(tcpmsg_gzip source dest_dir)
  get_filename_component(name ${source} NAME)
  set(gz ${CMAKE_BINARY_DIR}/gz/${name}.gz)
  add_custom_command(OUTPUT ${gz}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/gz
    COMMAND sh -c "gzip -9 -n -c \"$1\" > \"$2\"" gzip ${PROJECT_SOURCE_DIR}/${source} ${gz}
    DEPENDS ${PROJECT_SOURCE_DIR}/${source}
    COMMENT "Compressing ${source}"
    VERBATIM)
  install(FILES ${gz} DESTINATION ${dest_dir})
  set(TCPMSG_GZIPPED ${TCPMSG_GZIPPED} ${gz} PARENT_SCOPE)
endfunction()
tcpmsg_gzip(man/tcpmsgd.8 ${CMAKE_INSTALL_MANDIR}/man8)
tcpmsg_gzip(man/tcpmsg.1 ${CMAKE_INSTALL_MANDIR}/man1)
tcpmsg_gzip(man/tcpmsg-transports.1 ${CMAKE_INSTALL_MANDIR}/man1)
tcpmsg_gzip(cmake/debian/changelog ${CMAKE_INSTALL_DOCDIR})
add_custom_target(tcpmsg_gzipped ALL DEPENDS ${TCPMSG_GZIPPED})
