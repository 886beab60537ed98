/* slow_resolver: a library the probe tests preload (LD_PRELOAD) into tcpmsg
 * to stand for a resolver whose servers do not answer: getaddrinfo of a
 * name ending in ".slow.test" (a reserved name, never in DNS) takes
 * SLOW_RESOLVER_S seconds and then fails with EAI_AGAIN. Any other name
 * goes to the C library's getaddrinfo. Nothing leaves the machine.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <time.h>

#define SLOW_RESOLVER_S 6

typedef int getaddrinfo_fn(const char *, const char *, const struct addrinfo *,
                           struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static const char suffix[] = ".slow.test";
    size_t n = node != NULL ? strlen(node) : 0;
    if (n >= sizeof suffix - 1 && strcmp(node + n - (sizeof suffix - 1), suffix) == 0) {
        struct timespec ts = { .tv_sec = SLOW_RESOLVER_S };
        while (nanosleep(&ts, &ts) != 0) { /* EINTR: sleep the rest */
        }
        return EAI_AGAIN;
    }
    getaddrinfo_fn *real = (getaddrinfo_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
    return real != NULL ? real(node, service, hints, res) : EAI_SYSTEM;
}
