/*
 * crecipe's /rdinit: the first process of a run.kvm guest. Static, so it needs nothing
 * from the tree it boots (a tree without a shell boots too).
 *
 * Mounts devtmpfs, proc and sys; runs /init with stdout on the second serial port
 * (ttyS1) and stderr on the console (ttyS0); writes /init's exit code to the third port
 * (ttyS2); syncs and powers off. If /init cannot run, it says why on the console and
 * writes no exit code, so the host reports the console's last lines. With `crecipe.ro`
 * on the kernel command line the root is remounted read-only before /init runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *what, const char *detail) {
  dprintf(2, "crecipe-rdinit: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

static void power_off(void) {
  sync();
  reboot(RB_POWER_OFF);
  for (;;) pause();
}

int main(void) {
  mkdir("/dev", 0755);
  mkdir("/proc", 0555);
  mkdir("/sys", 0555);
  if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) != 0 && errno != EBUSY) say("mount /dev", strerror(errno));
  mount("proc", "/proc", "proc", 0, NULL);
  mount("sysfs", "/sys", "sysfs", 0, NULL);

  char cmdline[4096] = {0};
  int cmdline_fd = open("/proc/cmdline", O_RDONLY);
  if (cmdline_fd >= 0) {
    (void)!read(cmdline_fd, cmdline, sizeof cmdline - 1);
    close(cmdline_fd);
  }
  if (strstr(cmdline, "crecipe.ro") && mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) say("remount / read-only", strerror(errno));

  int console = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
  int out = open("/dev/ttyS1", O_WRONLY | O_NOCTTY);
  int code_port = open("/dev/ttyS2", O_WRONLY | O_NOCTTY);
  if (console >= 0) dup2(console, 2);
  if (out < 0 || code_port < 0) {
    say("cannot open the serial ports ttyS1/ttyS2", strerror(errno));
    power_off();
  }

  /* A close-on-exec pipe tells the parent whether execve worked. */
  int exec_report[2];
  if (pipe2(exec_report, O_CLOEXEC) != 0) say("pipe", strerror(errno));
  pid_t child = fork();
  if (child == 0) {
    close(exec_report[0]);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out, 1);
    char *init_argv[] = {"/init", NULL};
    char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TERM=dumb", NULL};
    execve("/init", init_argv, envp);
    int error = errno;
    say("cannot execute /init", strerror(error));
    (void)!write(exec_report[1], &error, sizeof error);
    _exit(127);
  }
  close(exec_report[1]);
  int exec_error = 0;
  ssize_t failed = read(exec_report[0], &exec_error, sizeof exec_error);
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) < 0) {
    say("cannot run /init", strerror(errno));
    power_off();
  }
  if (failed > 0) power_off(); /* explained on the console; no exit code */
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  fsync(out);
  dprintf(code_port, "%d\n", code);
  fsync(code_port);
  power_off();
  return 0;
}
