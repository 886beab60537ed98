# What the kernel's TCP knows of each connection (TCP_INFO), against ss(8)
# reading the same sockets (test_tcpinfo.c), on both event loop backends.
# Fork mode lists its connections from the parent, which holds no socket:
# they have no tcp object there, so the cases do not run in fork mode.
tcpmsg_integration_test(test_tcpinfo CASES api_matches_ss counted_at_close)
set_tests_properties(integration.test_tcpinfo.api_matches_ss
  integration.uring.test_tcpinfo.api_matches_ss PROPERTIES
  SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")

# Through a link that drops packets, in network namespaces the test makes
# (tcp_netns.sh): retransmissions are counted, and /api/connections agrees
# with ss -ti on a connection that saw them. Skipped (77) where namespaces
# cannot be created.
foreach(io IN ITEMS epoll uring)
  set(name integration.tcp_netns)
  if(io STREQUAL "uring")
    set(name integration.uring.tcp_netns)
  endif()
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/tcp_netns.sh
                   $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg> ${io})
  set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT 120 SKIP_RETURN_CODE 77)
endforeach()
set_tests_properties(integration.uring.tcp_netns PROPERTIES LABELS "integration;uring")

# Stage timestamps (test_stages.c): a stopped server's wait shows in
# rx_queue, every stage counts exactly the sampled messages, a deep pipeline
# of tiny messages gives up none, the stages nest (a wait in the send path
# is counted once), one in N is one in N, runs of frames split by RTT
# reports keep every sample, and sampling off leaves
# SO_TIMESTAMPING off on every socket. In
# fork mode too: the children sample, and their records carry the stages.
tcpmsg_integration_test(test_stages CASES
  sigstop_rx_queue every_message_counted partial_writes deep_pipeline_keeps_samples
  stages_nest one_in_n split_runs off_no_timestamping)
tcpmsg_fork_variants(test_stages CASES
  sigstop_rx_queue every_message_counted partial_writes deep_pipeline_keeps_samples
  stages_nest one_in_n split_runs off_no_timestamping)
set_tests_properties(integration.test_stages.off_no_timestamping
  integration.uring.test_stages.off_no_timestamping
  integration.fork.test_stages.off_no_timestamping PROPERTIES
  SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")

# The tx_ack stage grows with a backlog on the ACKs' path, through a
# rate-limited veth link between two namespaces (tcp_stages_netns.sh).
# Skipped (77) where namespaces cannot be created.
foreach(io IN ITEMS epoll uring)
  set(name integration.tcp_stages_netns)
  if(io STREQUAL "uring")
    set(name integration.uring.tcp_stages_netns)
  endif()
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/tcp_stages_netns.sh
                   $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg> ${io})
  set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT 120 SKIP_RETURN_CODE 77)
endforeach()
set_tests_properties(integration.uring.tcp_stages_netns PROPERTIES LABELS "integration;uring")
