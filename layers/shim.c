/*
 * /usr/bin/fusion: the static entry point of the Fusion layer.
 *
 * It must start in any image (no libc, musl, a foreign glibc), so it is a static binary that
 * only rewrites the environment and execs the bundled interpreter:
 *
 *     /.fusion/bin/python3 -I -m fusion_client ARGS...
 *
 * LD_PRELOAD and LD_LIBRARY_PATH belong to the image and would be applied to the bundled
 * interpreter by its dynamic loader, so they are moved to FUSION_SAVED_LD_PRELOAD and
 * FUSION_SAVED_LD_LIBRARY_PATH; the Python launcher restores them for the user's command.
 * Stale FUSION_SAVED_* values (e.g. from an outer fusion) are dropped first, so the launcher
 * restores exactly what this process was given.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PYTHON "/.fusion/bin/python3"
#define SAVED_PREFIX "FUSION_SAVED_"

static const char *const moved[] = {"LD_PRELOAD=", "LD_LIBRARY_PATH="};
#define N_MOVED (sizeof(moved) / sizeof(moved[0]))

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int is_stale_saved(const char *entry) {
    for (size_t i = 0; i < N_MOVED; i++) {
        size_t n = strlen(SAVED_PREFIX);
        if (starts_with(entry, SAVED_PREFIX) && starts_with(entry + n, moved[i])) return 1;
    }
    return 0;
}

/* "LD_PRELOAD=x" -> "FUSION_SAVED_LD_PRELOAD=x" (malloc'd), or NULL if not a moved variable. */
static char *saved_form(const char *entry) {
    for (size_t i = 0; i < N_MOVED; i++) {
        if (starts_with(entry, moved[i])) {
            size_t n = strlen(SAVED_PREFIX), m = strlen(entry);
            char *out = malloc(n + m + 1);
            if (out == NULL) return NULL;
            memcpy(out, SAVED_PREFIX, n);
            memcpy(out + n, entry, m + 1);
            return out;
        }
    }
    return NULL;
}

static void say(const char *s) {
    ssize_t ignored = write(2, s, strlen(s));
    (void)ignored;
}

int main(int argc, char **argv, char **envp) {
    size_t n_env = 0;
    while (envp[n_env] != NULL) n_env++;

    char **env = calloc(n_env + 1, sizeof(char *));
    char **args = calloc((size_t)argc + 4, sizeof(char *));
    if (env == NULL || args == NULL) {
        say("fusion: out of memory\n");
        return 127;
    }

    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        if (is_stale_saved(envp[i])) continue;
        char *saved = saved_form(envp[i]);
        env[k++] = saved != NULL ? saved : envp[i];
    }
    env[k] = NULL;

    args[0] = PYTHON;
    args[1] = "-I";
    args[2] = "-m";
    args[3] = "fusion_client";
    for (int i = 1; i < argc; i++) args[i + 3] = argv[i];
    args[argc + 3] = NULL;

    execve(PYTHON, args, env);
    int err = errno;
    say("fusion: cannot start " PYTHON ": ");
    say(strerror(err));
    say(" (is the Fusion layer complete?)\n");
    return 127;
}
