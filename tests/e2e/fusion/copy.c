/* copy SRC DST: the one static binary of the scratch test image. */
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fputs("usage: copy SRC DST\n", stderr);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    FILE *out = fopen(argv[2], "wb");
    if (!out) {
        perror(argv[2]);
        return 1;
    }
    char buffer[65536];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, in)) > 0) {
        if (fwrite(buffer, 1, n, out) != n) {
            perror(argv[2]);
            return 1;
        }
    }
    if (ferror(in) || fclose(out) != 0) {
        perror("copy");
        return 1;
    }
    return 0;
}
