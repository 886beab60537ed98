# The server's system call counters against strace (test_syscalls.c), once
# per event loop backend: tcpmsg_integration_test registers the epoll case
# and its io_uring variant (TCPMSG_IT_IO); a third run adds --sqpoll
# (TCPMSG_IT_SQPOLL=1). The case skips (cmocka SKIPPED, shown as skipped by
# ctest) where strace is missing or may not trace, and the io_uring runs
# where io_uring is disabled.
# worker_syscalls_stamped: the same with --stage-sample 1.
tcpmsg_integration_test(test_syscalls CASES worker_syscalls worker_syscalls_stamped)
set_tests_properties(integration.test_syscalls.worker_syscalls
  integration.test_syscalls.worker_syscalls_stamped PROPERTIES
  LABELS "integration;strace" SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
set_tests_properties(integration.uring.test_syscalls.worker_syscalls
  integration.uring.test_syscalls.worker_syscalls_stamped PROPERTIES
  LABELS "integration;strace;uring" SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
add_test(NAME integration.uring_sqpoll.test_syscalls.worker_syscalls
         COMMAND test_syscalls worker_syscalls)
set_tests_properties(integration.uring_sqpoll.test_syscalls.worker_syscalls PROPERTIES
  ENVIRONMENT "TCPMSG_IT_IO=uring;TCPMSG_IT_SQPOLL=1" LABELS "integration;strace;uring"
  TIMEOUT 120 SKIP_RETURN_CODE 77 SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
