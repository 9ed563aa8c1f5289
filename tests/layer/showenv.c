/* Test probe: prints "ARG <arg>" for each argument and "ENV <entry>" for each environment
 * entry, NUL-terminated, so a test sees exactly what a program was started with. */
#include <stdio.h>

extern char **environ;

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("ARG %s%c", argv[i], 0);
    for (char **e = environ; *e != NULL; e++) printf("ENV %s%c", *e, 0);
    return 0;
}
