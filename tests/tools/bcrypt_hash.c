/* bcrypt_hash: prints the bcrypt hash of a password for the web config
 * tests (a fresh random salt, $2b$, cost 4 unless given). Test tool only:
 * `htpasswd -nBC 10 "" | tr -d ':\n'` makes production hashes.
 * Usage: bcrypt_hash PASSWORD [COST]
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bcrypt_hash PASSWORD [COST]\n");
        return 2;
    }
    unsigned long cost = argc == 3 ? strtoul(argv[2], NULL, 10) : 4;
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    static struct crypt_data data;
    if (crypt_gensalt_rn("$2b$", cost, NULL, 0, salt, sizeof salt) == NULL ||
        crypt_rn(argv[1], salt, &data, sizeof data) == NULL || data.output[0] == '*') {
        perror("bcrypt_hash");
        return 1;
    }
    puts(data.output);
    return 0;
}
