# The HTTP endpoint: metrics, health, connections, static files, RTT reports.
# One ctest test per case (integration.test_http.<case>).
tcpmsg_integration_test(test_http CASES
  metrics_exact_counts format_negotiation healthz connections_api hostile_http http_limits
  rtt_report_frames client_rtt discarded_bytes_counted)
