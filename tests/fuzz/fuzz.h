/* fuzz: what every libFuzzer harness of tests/fuzz shares: the entry point's
 * prototype and an invariant check that holds in every build type (assert
 * is compiled out under NDEBUG; a broken invariant must still crash).
 */
#ifndef TCPMSG_FUZZ_H
#define TCPMSG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort, which libFuzzer reports as a crash and saves the input of, when
 * cond is false. */
#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
