# Client RTT reports: accepted only where they can be true. One ctest test
# per case, in epoll mode (integration.test_rtt.<case>) and in fork mode
# (integration.fork.test_rtt.<case>, see cases.cmake).
set(TCPMSG_RTT_CASES
  poisoned_report too_many_samples value_too_large honest_client honest_bench reports_ignored)
tcpmsg_integration_test(test_rtt CASES ${TCPMSG_RTT_CASES})
tcpmsg_fork_variants(test_rtt CASES ${TCPMSG_RTT_CASES})
