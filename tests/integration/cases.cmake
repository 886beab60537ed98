# Integration test cases: one executable per area, one ctest test per case
# (integration.<executable>.<case>), so `ctest -j` runs them in parallel.
# A case name is its test function without the "test_" prefix.
tcpmsg_integration_test(test_server CASES
  text_mode classic_client concurrent_200 bad_input limits limits_per_ip)
tcpmsg_integration_test(test_robustness CASES
  slow_reader byte_a_second idle_timeout emfile)
tcpmsg_integration_test(test_shutdown CASES
  sigterm_drain drain_timeout_idle)
tcpmsg_integration_test(test_cli CASES
  cli cli_json_log)
tcpmsg_integration_test(test_client CASES
  roundtrip_client client_text client_exit_codes)
