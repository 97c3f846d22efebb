/* postbusctl-reload.c: "postbusctl reload": asks systemd to reload postbus.target, which every running role
 * follows (ReloadPropagatedFrom=), and reports whether it went through. Runs in the postbusctl process. */
#include <spawn.h>
#include <sys/wait.h>

#include "log.h"
#include "postbusctl.h"

extern char **environ;

/* systemctl does the work and waits for the jobs: its exit status is the answer, and its messages (a
 * role's check failed, see journalctl) go to our stderr. */
int verb_reload(int argc, char **argv) {
        char *args[] = { (char *) "systemctl", (char *) "reload", (char *) "postbus.target", NULL };
        pid_t pid;
        int r, status;

        r = posix_spawnp(&pid, "systemctl", NULL, NULL, args, environ);
        if (r != 0) {
                log_error_errno(r, "Failed to run systemctl: %m");
                return EX_UNAVAILABLE;
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        log_error_errno(errno, "Failed to wait for systemctl: %m");
                        return EX_OSERR;
                }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                log_error("The reload failed: the old configuration stays in use (journalctl -u 'postbus-*' "
                          "names the file and line).");
                return EX_CONFIG;
        }
        return 0;
}
