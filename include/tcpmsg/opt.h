/* opt: checked parsing of option values (numbers, sizes, durations) with
 * clear messages, shared by the server's and the client's command lines.
 */
#ifndef TCPMSG_OPT_H
#define TCPMSG_OPT_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0 and stores the value, or -EINVAL and writes a one-line
 * reason ("--port: '70000' is out of range 0..65535") into err. name is the
 * option as the user typed it, for the message. */

/* A decimal integer in [min, max]. */
int opt_parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                  char *err, size_t err_cap);

/* A byte count in [min, max]: digits with an optional binary suffix
 * K/KiB, M/MiB, G/GiB (1024-based), e.g. "64KiB", "1M". */
int opt_parse_size(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                   char *err, size_t err_cap);

/* Seconds as a decimal number in [min, max], e.g. "30", "0.5". */
int opt_parse_seconds(const char *name, const char *s, double min, double max, double *out,
                      char *err, size_t err_cap);

/* The message for getopt_long's '?' result: word is the argument getopt
 * stopped at (argv[optind - 1]), bad_short its optopt. Names an unknown short
 * option, an unknown long one, or a long one given a value it does not take. */
struct option;
void opt_bad_option_message(char *out, size_t cap, const char *word, int bad_short,
                            const struct option *longopts);

#endif
