/* admin: the routes tcpmsgd serves on its HTTP endpoint. */
#ifndef TCPMSG_SERVER_ADMIN_H
#define TCPMSG_SERVER_ADMIN_H

#include "tcpmsg/http.h"

/* An http_route_fn; ctx is the struct server. */
void admin_route(void *ctx, const struct http_request *req, struct http_response *resp);

#endif
