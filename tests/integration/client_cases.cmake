# The client as a measurement tool (docs/CLIENT.md): open-loop rate,
# coordinated omission, interval reports, spectrum files, probe mode.
tcpmsg_integration_test(test_loadgen CASES
  rate_holds coordinated_omission interval_json interval_text spectrum_files sizes_and_text
  wrong_reply_exit close_with_write_outstanding rate_not_kept_exit output_when_nothing_measured
  svg_axis_fits_data)
tcpmsg_integration_test(test_probe CASES
  probe_loss_and_recovery probe_connect_backoff)
