# Integration test cases: one executable per area, one ctest test per case
# (integration.<executable>.<case>), so `ctest -j` runs them in parallel.
# A case name is its test function without the "test_" prefix.
tcpmsg_integration_test(test_server CASES
  text_mode classic_client classic_client_info concurrent_200 bad_input limits limits_per_ip
  second_server_same_port)
tcpmsg_integration_test(test_robustness CASES
  slow_reader small_output_cap byte_a_second idle_timeout emfile)
tcpmsg_integration_test(test_shutdown CASES
  sigterm_drain drain_blocked drain_timeout_idle drain_slow_reader drain_timeout_lost
  second_signal_lost)
tcpmsg_integration_test(test_memory CASES
  output_cap_bounded partial_flood_budget idle_shrink idle_cost input_growth big_then_small_partial
  paused_resumes)
tcpmsg_integration_test(test_cli CASES
  cli cli_json_log bad_values)
# test_cli checks --help against the parser's own option list (server/config.h).
target_include_directories(test_cli PRIVATE ${PROJECT_SOURCE_DIR}/src)
tcpmsg_integration_test(test_client CASES
  roundtrip_client client_text client_exit_codes reply_escaped_on_tty)

# Fork mode passes the same cases: each is registered a second time as
# integration.fork.<executable>.<case>, with TCPMSG_IT_MODE=fork, which makes
# the harness start every server with "--mode fork" (harness.h, it_mode).
function(tcpmsg_fork_variants name)
  cmake_parse_arguments(IT "" "" "CASES" ${ARGN})
  foreach(case IN LISTS IT_CASES)
    add_test(NAME integration.fork.${name}.${case} COMMAND ${name} ${case})
    set_tests_properties(integration.fork.${name}.${case} PROPERTIES
      ENVIRONMENT TCPMSG_IT_MODE=fork LABELS "integration;fork" TIMEOUT 120)
  endforeach()
endfunction()

tcpmsg_fork_variants(test_server CASES
  text_mode classic_client classic_client_info concurrent_200 bad_input limits limits_per_ip
  second_server_same_port)
# Not emfile: it lowers RLIMIT_NOFILE and expects accept() to fail with
# EMFILE while 60 clients stay open. In fork mode the parent closes each
# client's descriptor right after fork(), so it never runs out of descriptors
# that way (the children hold them, each in its own table); the limit it hits
# instead is --max-children, which test_fork.max_children covers.
tcpmsg_fork_variants(test_robustness CASES
  slow_reader small_output_cap byte_a_second idle_timeout)
# Not idle_shrink and idle_cost: they measure the server process's memory,
# which in fork mode is spread over the children (their buffers are still
# charged to the shared budget, which the other two cases check).
tcpmsg_fork_variants(test_memory CASES
  output_cap_bounded partial_flood_budget input_growth big_then_small_partial paused_resumes)
tcpmsg_fork_variants(test_shutdown CASES
  sigterm_drain drain_blocked drain_timeout_idle drain_slow_reader drain_timeout_lost
  second_signal_lost)
# Not cli: it checks option parsing and exit codes and starts no server.
tcpmsg_fork_variants(test_cli CASES
  cli_json_log)
tcpmsg_fork_variants(test_client CASES
  roundtrip_client client_text client_exit_codes reply_escaped_on_tty)

# Fork mode only (they pass "--mode fork" themselves).
tcpmsg_integration_test(test_fork FORK_ONLY CASES
  exact_accounting child_killed no_zombies child_descriptors max_children sigterm_drain_children
  final_record_once)
set_tests_properties(
  integration.test_fork.final_record_once
  integration.test_fork.exact_accounting integration.test_fork.child_killed
  integration.test_fork.no_zombies integration.test_fork.child_descriptors
  integration.test_fork.max_children integration.test_fork.sigterm_drain_children
  PROPERTIES LABELS "integration;fork")

# The IPC transports program (src/transports.c): three rows, non-zero rates.
add_test(NAME integration.transports
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/transports.sh $<TARGET_FILE:tcpmsg-transports>)
set_tests_properties(integration.transports PROPERTIES LABELS integration TIMEOUT 60)

# The README's example commands, run against a live tcpmsgd: each prints
# what the README shows (tests/integration/readme.sh).
add_test(NAME integration.readme
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/readme.sh $<TARGET_FILE:tcpmsgd>
          $<TARGET_FILE:tcpmsg> ${PROJECT_SOURCE_DIR}/README.md)
set_tests_properties(integration.readme PROPERTIES LABELS integration TIMEOUT 60)
