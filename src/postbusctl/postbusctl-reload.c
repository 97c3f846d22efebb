/* postbusctl-reload.c: "postbusctl reload": asks systemd to reload every running postbus role, as
 * "systemctl reload postbus.target" does (ReloadPropagatedFrom=), and reports whether each went through.
 * Runs in the postbusctl process. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>

#include "log.h"
#include "postbusctl.h"

extern char **environ;

#define RELOAD_UNITS_MAX 64

static int spawn_wait(char **args) {
        pid_t pid;
        int r, status;

        r = posix_spawnp(&pid, args[0], NULL, NULL, args, environ);
        if (r != 0)
                return log_error_errno(r, "Failed to run %s: %m", args[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return log_error_errno(errno, "Failed to wait for %s: %m", args[0]);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The reload job of postbus.target ends as soon as it has passed the reload on, whatever each role's
 * ExecReload= then says (systemd 252), so the running roles are reloaded by name here, in one systemctl
 * call that waits for every job and fails if any did: its exit status is the answer, and its message (see
 * journalctl) goes to our stderr. */
int verb_reload(int argc, char **argv) {
        char *list[] = { (char *) "systemctl", (char *) "list-units", (char *) "--type=service",
                         (char *) "--state=running", (char *) "--plain", (char *) "--no-legend",
                         (char *) "postbus-*.service", NULL };
        char *args[RELOAD_UNITS_MAX + 3] = { (char *) "systemctl", (char *) "reload" };
        size_t n = 2;
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        int r, fds[2];
        pid_t pid;
        FILE *f;

        if (pipe2(fds, O_CLOEXEC) < 0) {
                log_error_errno(errno, "Failed to make a pipe: %m");
                return EX_OSERR;
        }
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
        r = posix_spawnp(&pid, list[0], &actions, NULL, list, environ);
        posix_spawn_file_actions_destroy(&actions);
        safe_close(fds[1]);
        if (r != 0) {
                safe_close(fds[0]);
                log_error_errno(r, "Failed to run systemctl: %m");
                return EX_UNAVAILABLE;
        }
        f = fdopen(fds[0], "r");
        if (!f) {
                safe_close(fds[0]);
                log_oom();
                return EX_OSERR;
        }
        while (getline(&line, &size, f) > 0) {
                char *unit = strtok(line, " \t\n");
                if (!unit || n >= RELOAD_UNITS_MAX + 2)
                        continue;
                args[n] = strdup(unit);
                if (!args[n])
                        break;
                n++;
        }
        fclose(f);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        args[n] = NULL;

        if (n == 2) {
                log_info("No postbus role is running: each reads the configuration when it starts.");
                return 0;
        }
        r = spawn_wait(args);
        for (size_t i = 2; i < n; i++)
                free(args[i]);
        if (r != 0) {
                log_error("The reload failed: the old configuration stays in use (journalctl -u 'postbus-*' "
                          "names the file and line).");
                return r < 0 ? EX_OSERR : EX_CONFIG;
        }
        return 0;
}
