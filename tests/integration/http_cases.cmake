# The HTTP endpoint: metrics, health, connections, static files, RTT reports.
# One ctest test per case (integration.test_http.<case>).
tcpmsg_integration_test(test_http CASES
  metrics_exact_counts format_negotiation healthz connections_api hostile_http http_limits
  rtt_report_frames client_rtt discarded_bytes_counted)

# The endpoint under attack: slowloris, one address's slow connections, out
# of descriptors (integration.test_http_attack.<case>).
tcpmsg_integration_test(test_http_attack CASES
  slowloris one_address_not_locked_out emfile_http total_cap)
