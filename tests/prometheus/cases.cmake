# Tests against the real Prometheus tools (Debian package prometheus:
# /usr/bin/prometheus, /usr/bin/promtool). Bash scripts, no python or curl;
# a test whose program is missing exits 77 and ctest reports it skipped.
# Each one starts its own tcpmsgd and Prometheus on port 0, so `ctest -j`
# runs them side by side; each stops what it started on exit.
set(TCPMSG_PROM_DIR ${CMAKE_CURRENT_LIST_DIR})
set(TCPMSG_DASHBOARDS ${PROJECT_SOURCE_DIR}/dashboards)

add_test(NAME prometheus.promtool_check_metrics
  COMMAND bash ${TCPMSG_PROM_DIR}/check_metrics.sh $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg>)
add_test(NAME prometheus.scrape
  COMMAND bash ${TCPMSG_PROM_DIR}/scrape.sh $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg>
          ${TCPMSG_DASHBOARDS})
add_test(NAME prometheus.dashboard_metrics
  COMMAND bash ${TCPMSG_PROM_DIR}/dashboard_metrics.sh $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg>
          ${TCPMSG_DASHBOARDS})
add_test(NAME prometheus.probe_relabel
  COMMAND bash ${TCPMSG_PROM_DIR}/probe_relabel.sh $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg>
          ${TCPMSG_DASHBOARDS})
add_test(NAME prometheus.probe_mesh
  COMMAND bash ${TCPMSG_PROM_DIR}/probe_mesh.sh $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg>
          ${TCPMSG_DASHBOARDS})
add_test(NAME prometheus.rules
  COMMAND bash ${TCPMSG_PROM_DIR}/rules.sh ${TCPMSG_DASHBOARDS})
add_test(NAME prometheus.web_config
  COMMAND bash ${TCPMSG_PROM_DIR}/web_config.sh $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:bcrypt_hash>)

set_tests_properties(
  prometheus.promtool_check_metrics prometheus.scrape prometheus.dashboard_metrics prometheus.rules
  prometheus.web_config prometheus.probe_relabel prometheus.probe_mesh
  PROPERTIES LABELS prometheus TIMEOUT 120)
