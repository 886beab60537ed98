/* tcpmsg: the client. Parses the command line and runs the one-shot, bench,
 * probe or merge command; the work lives in src/client/.
 */
#include "client/client.h"

int main(int argc, char **argv)
{
    struct client_config cfg;
    client_config_defaults(&cfg);
    switch (client_config_parse(&cfg, argc, argv, stdout, stderr)) {
    case CLIENT_CONFIG_OK:
        break;
    case CLIENT_CONFIG_EXIT:
        return 0;
    case CLIENT_CONFIG_ERROR:
        return 2;
    }
    switch (cfg.command) {
    case CLIENT_BENCH:
        return bench_run(&cfg);
    case CLIENT_PROBE:
        return probe_run(&cfg);
    case CLIENT_MERGE:
        return merge_run(&cfg);
    case CLIENT_ONESHOT:
        break;
    }
    return oneshot_run(&cfg);
}
