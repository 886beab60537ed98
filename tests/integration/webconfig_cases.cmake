# --web-config: TLS, client certificates and basic auth on the HTTP endpoint,
# driven with curl and certificates made by openssl at test time.
# One ctest test per case (integration.test_https.<case>).
tcpmsg_integration_test(test_https CASES
  tls_basic_auth stalled_handshake_cut client_cert_required client_cert_if_given auth_without_tls
  bad_web_config)
# The test makes its bcrypt hash with libcrypt.
target_link_libraries(test_https PRIVATE PkgConfig::CRYPT)
