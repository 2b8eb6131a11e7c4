/* Shared helpers for the native baselines: clock, CPU time, peak RSS, pidfd, JSON output.
 * Each baseline makes the same syscalls an event-loop engine makes (posix_spawn, pipe2,
 * pidfd_open, poll/epoll, read/write, waitid) with no interpreter in the way. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *bench_envp[] = {"PATH=/usr/bin:/bin", NULL};

static inline double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static inline double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static inline long status_kb(const char *field) {
    char line[256];
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field))) { v = atol(line + strlen(field)); break; }
    fclose(f);
    return v;
}

/* Reset the peak RSS (VmHWM) to the current RSS and return that in KiB. ru_maxrss is not
 * used: after posix_spawn (vfork) + exec it starts at the spawning parent's peak. */
static inline long rss_baseline_kb(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) { fputs("5", f); fclose(f); }
    return status_kb("VmRSS:");
}

static inline long peak_rss_kb(void) { return status_kb("VmHWM:"); }

static inline int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

static inline void die(const char *what) {
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(2);
}

/* Allocate and touch `mib` MiB so that the parent is big (what makes fork() slow). */
static inline void hold_memory(size_t mib) {
    if (!mib) return;
    size_t n = mib << 20;
    volatile char *m = malloc(n); /* volatile: the stores must not be optimised away */
    if (!m) die("malloc");
    for (size_t i = 0; i < n; i += 4096) m[i] = 1;
}

/* The child's signal state as an engine must leave it: empty mask, default dispositions. */
static inline void spawn_attr_defaults(posix_spawnattr_t *at, short extra_flags) {
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_init(at);
    posix_spawnattr_setsigmask(at, &empty);
    posix_spawnattr_setsigdefault(at, &all);
    posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | extra_flags);
}

static inline void pin_to_cpu(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s)) die("sched_setaffinity");
}
