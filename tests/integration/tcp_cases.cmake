# What the kernel's TCP knows of each connection (TCP_INFO), against ss(8)
# reading the same sockets (test_tcpinfo.c), on both event loop backends.
# Fork mode lists its connections from the parent, which holds no socket:
# they have no tcp object there, so the cases do not run in fork mode.
tcpmsg_integration_test(test_tcpinfo CASES api_matches_ss counted_at_close)
set_tests_properties(integration.test_tcpinfo.api_matches_ss
  integration.uring.test_tcpinfo.api_matches_ss PROPERTIES
  SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
