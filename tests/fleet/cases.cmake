# A fleet of four hosts on one machine (fleet.sh): network namespaces on a
# bridge, each running tcpmsgd and a continuous probe of the others, one link
# rate-limited, and a real Prometheus checking it all through its HTTP API.
# Needs root, or unprivileged user namespaces, and the Debian package
# prometheus; skipped (77), saying why, without them. RUN_SERIAL: eleven
# processes and a bulk load of their own; alone, the test's RTTs are the
# link's and not the rest of the suite's.
add_test(NAME fleet.four_hosts
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/fleet.sh $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg>
          ${PROJECT_SOURCE_DIR}/dashboards)
set_tests_properties(fleet.four_hosts PROPERTIES
  LABELS fleet TIMEOUT 120 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
