/* native/echo_rt.c with SPIN_US microseconds of busy work before each write: how S5 unpinned
 * depends on the work per message on a VM whose idle vCPUs halt.  usage: as echo_rt. */
#include "common.h"
#include <poll.h>

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: echo_rt N CPU CHILD [ARGS]\n"); return 2; }
    long n = atol(argv[1]);
    int cpu = atoi(argv[2]);
    if (cpu >= 0) pin_to_cpu(cpu); /* the child inherits the affinity */
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) die("pipe2");
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    spawn_attr_defaults(&at, 0);
    pid_t pid;
    if (posix_spawn(&pid, argv[3], &fa, &at, argv + 3, bench_envp)) die("posix_spawn");
    close(in[0]); close(out[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    static const char line[] = "ferroproc round trip\n";
    const size_t len = sizeof line - 1;
    char buf[4096];
    double t0 = now_s();
    double spin = getenv("SPIN_US") ? atof(getenv("SPIN_US")) / 1e6 : 0;
    for (long i = 0; i < n; i++) {
        if (spin > 0) { double s0 = now_s(); while (now_s() - s0 < spin) {} }
        if (write(in[1], line, len) != (ssize_t)len) die("write");
        size_t got = 0;
        while (got < len) {
            struct pollfd p = {out[0], POLLIN, 0};
            if (poll(&p, 1, -1) < 0 && errno != EINTR) die("poll");
            ssize_t r = read(out[0], buf, sizeof buf);
            if (r > 0) got += r;
            else if (r == 0) { fprintf(stderr, "child closed early\n"); return 1; }
        }
    }
    double dt = now_s() - t0;
    close(in[1]);
    int st;
    waitpid(pid, &st, 0);
    printf("{\"n\": %ld, \"seconds\": %.6f, \"us\": %.3f, \"ok\": 1}\n", n, dt, dt / n * 1e6);
    return 0;
}
