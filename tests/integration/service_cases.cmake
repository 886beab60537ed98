# tcpmsgd as a systemd service (README, "Run as a service"), tested without
# systemd: test_service plays its part (the NOTIFY_SOCKET datagram socket, a
# listening socket passed as descriptor 3), on epoll, io_uring and in fork
# mode. Built without libsystemd (TCPMSG_SYSTEMD off), it exits 77: skipped.
set(service_cases notify_sequence no_ready_when_start_fails activation_passed_socket
    activation_for_another_pid activation_refuses_udp)
tcpmsg_integration_test(test_service CASES ${service_cases})
tcpmsg_fork_variants(test_service CASES ${service_cases})
if(TCPMSG_SYSTEMD)
  target_compile_definitions(test_service PRIVATE TCPMSG_HAVE_SYSTEMD)
endif()
foreach(case IN LISTS service_cases)
  set_tests_properties(integration.test_service.${case} integration.fork.test_service.${case}
                       PROPERTIES SKIP_RETURN_CODE 77)
endforeach()

# The unit files themselves: `systemd-analyze verify` accepts them, and
# `systemd-analyze security` rates the service's exposure at most 2.0. Both
# read the copy of the units that runs the build tree's tcpmsgd
# (systemd/CMakeLists.txt). Skipped (77) where systemd-analyze is missing.
foreach(check verify security)
  add_test(NAME integration.service_units.${check}
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/service_units.sh ${check}
                   ${CMAKE_BINARY_DIR}/systemd/test)
  set_tests_properties(integration.service_units.${check} PROPERTIES
    LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 60)
endforeach()

# The system calls tcpmsgd makes, under strace in each mode, against the
# unit's SystemCallFilter (service_syscalls.sh). Skipped (77) without strace
# or systemd-analyze, and in sanitizer builds.
add_test(NAME integration.service_units.syscall_filter
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/service_syscalls.sh
                 $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg> "${TCPMSG_SANITIZE}")
set_tests_properties(integration.service_units.syscall_filter PROPERTIES
  LABELS "integration;strace" SKIP_RETURN_CODE 77 TIMEOUT 120)
