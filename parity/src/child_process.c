/* child_process.c — see child_process.h. */
#include "child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

/* The last non-empty line of the child's log, for the error message. */
static void last_line(const char *path, char *buf, size_t size) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (line[0] != '\n') {
            size_t n = strlen(line);
            if (n >= size) n = size - 1;
            memcpy(buf, line, n);
            buf[n] = '\0';
        }
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

bn_status parity_run_child(const char *who, char *const argv[], const char *log, const volatile sig_atomic_t *cancel,
                           bn_error *err) {
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa)) return bn_error_nomem(err, sizeof fa, "%s: spawn actions", who);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    const int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        return bn_error_set(err, BN_ERR_NOT_FOUND, "%s: cannot run %s: %s (give the interpreter with --python)", who,
                            argv[0], strerror(rc));
    int status = 0;
    for (;;) {
        const pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) return bn_error_set(err, BN_ERR_IO, "%s: waiting for %s: %s", who, argv[0], strerror(errno));
        if (cancel && *cancel) {
            kill(pid, SIGTERM);
            waitpid(pid, &status, 0);
            return bn_error_set(err, BN_ERR_CANCELLED, "interrupted");
        }
        const struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return BN_OK;
    char why[400];
    last_line(log, why, sizeof why);
    if (WIFEXITED(status))
        return bn_error_set(err, BN_ERR_IO, "%s: %s %s exited %d: %s (log %s)", who, argv[0], argv[1], WEXITSTATUS(status),
                            why[0] ? why : "(no message)", log);
    return bn_error_set(err, BN_ERR_IO, "%s: %s %s killed by signal %d (log %s)", who, argv[0], argv[1], WTERMSIG(status), log);
}
