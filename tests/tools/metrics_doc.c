/* metrics_doc: prints the metric reference table of docs/METRICS.md from
 * the metric definitions in src/server/metrics.c. unit.test_metrics fails
 * when the document and the definitions disagree; regenerate with
 *   cmake --build build --target metrics-doc
 */
#include <stdio.h>

#include "server/metrics.h"

int main(void)
{
    metrics_write_markdown(stdout);
    return 0;
}
