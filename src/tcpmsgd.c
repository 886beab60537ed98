/* tcpmsgd: the TCP message server. Parses the command line and runs the
 * server; everything else lives in src/server/.
 */
#include <stdio.h>
#include <stdlib.h>

#include "server/admin.h"
#include "server/config.h"
#include "server/server.h"
#include "tcpmsg/log.h"

int main(int argc, char **argv)
{
    struct server_config cfg;
    server_config_defaults(&cfg);
    switch (server_config_parse(&cfg, argc, argv, stdout, stderr)) {
    case CONFIG_OK:
        break;
    case CONFIG_EXIT:
        return 0;
    case CONFIG_ERROR:
        return 2;
    }
    log_configure(cfg.log_level, cfg.log_format, 2);

    struct server srv;
    if (server_start(&srv, &cfg, admin_route) < 0)
        return 1;
    int rc = server_wait(&srv); /* 0, or SERVER_EXIT_REPLIES_LOST */
    server_destroy(&srv);
    return rc;
}
