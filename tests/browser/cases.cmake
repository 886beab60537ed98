# Browser tests: headless chromium loads the status page (web/) from a real
# tcpmsgd on port 0, or tcpmsg probe's page (web/probe.html, probe_page), and
# the scripts check the rendered DOM. They need chromium installed and fail,
# saying so, when it is not. Screenshots and the dumped DOMs go to
# test-artifacts/ in the build directory.
foreach(case status_page server_gone server_back probe_page)
  add_test(NAME browser.${case}
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/${case}.sh
            $<TARGET_FILE:tcpmsgd> $<TARGET_FILE:tcpmsg>
            ${PROJECT_SOURCE_DIR}/web ${CMAKE_BINARY_DIR}/test-artifacts)
  set_tests_properties(browser.${case} PROPERTIES LABELS browser TIMEOUT 120)
endforeach()
