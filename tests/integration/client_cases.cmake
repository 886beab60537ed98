# The client as a measurement tool (docs/CLIENT.md): open-loop rate,
# coordinated omission, interval reports, spectrum files, probe mode.
tcpmsg_integration_test(test_loadgen CASES
  rate_holds coordinated_omission interval_json interval_text spectrum_files sizes_and_text
  wrong_reply_exit close_with_write_outstanding rate_not_kept_exit output_when_nothing_measured
  svg_axis_fits_data)
tcpmsg_integration_test(test_probe CASES
  probe_loss_and_recovery probe_connect_backoff serve_probe serve_concurrent)
# tcpmsg probe --targets FILE: both formats, reloads, a bad file, the limits.
tcpmsg_integration_test(test_probe_reload ONE_BACKEND CASES
  file_lines file_sd reload behind_symlink bad_at_start limits
  truncated_while_siblings_change stuck_resolver_at_exit busy_directory)
# A getaddrinfo that takes seconds for names under .slow.test, preloaded
# into tcpmsg by the test above.
add_library(slow_resolver MODULE integration/slow_resolver.c)
target_link_libraries(slow_resolver PRIVATE ${CMAKE_DL_LIBS})
target_compile_definitions(test_probe_reload PRIVATE
  SLOW_RESOLVER_PATH="$<TARGET_FILE:slow_resolver>")
add_dependencies(test_probe_reload slow_resolver)
# HdrHistogram logs of several load generators, merged (tcpmsg merge).
tcpmsg_integration_test(test_merge CASES three_generators one_log_same_percentiles refusals)
# The same logs read by the reference JavaScript reader (hdr-histogram-js,
# installed by .ci/setup with npm into BUILD/js); skipped (77) without it.
add_test(NAME integration.hdrlog_js
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/hdrlog_js.sh $<TARGET_FILE:tcpmsgd>
                 $<TARGET_FILE:tcpmsg> ${CMAKE_BINARY_DIR}/js/node_modules
                 ${CMAKE_CURRENT_SOURCE_DIR}/tools/hdrlog_read.js)
set_tests_properties(integration.hdrlog_js PROPERTIES LABELS integration TIMEOUT 120
                     SKIP_RETURN_CODE 77)
# The client's stages (tcpmsg --stages, docs/STAGES.md): a client stopped
# while its reply arrives shows it in its own receive-queue stage.
tcpmsg_integration_test(test_client_stages CASES
  oneshot_rx_queue oneshot_real_server bench_rx_queue bench_counts_and_merge)
