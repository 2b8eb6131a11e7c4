/* Native baseline for S4: capture the whole output of `head -c BYTES /dev/zero` into memory.
 * usage: capture BYTES HEAD_PATH   -- prints MB/s and the growth of peak RSS (one JSON line). */
#include "common.h"
#include <poll.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: capture BYTES HEAD\n"); return 2; }
    size_t want = (size_t)atoll(argv[1]);
    long base_rss = rss_baseline_kb();
    int out[2];
    if (pipe2(out, O_CLOEXEC)) die("pipe2");
    fcntl(out[0], F_SETPIPE_SZ, 1 << 20);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    spawn_attr_defaults(&at, 0);
    char *av[] = {"head", "-c", argv[1], "/dev/zero", NULL};
    pid_t pid;
    double t0 = now_s();
    if (posix_spawn(&pid, argv[2], &fa, &at, av, bench_envp)) die("posix_spawn");
    close(out[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    size_t cap = 1 << 20, got = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - got < (1 << 20)) { cap *= 2; buf = realloc(buf, cap); } /* large blocks: mremap, no copy */
        ssize_t r = read(out[0], buf + got, cap - got);
        if (r > 0) { got += r; continue; }
        if (r == 0) break;
        if (errno == EAGAIN) { struct pollfd p = {out[0], POLLIN, 0}; poll(&p, 1, -1); continue; }
        if (errno != EINTR) die("read");
    }
    int st;
    waitpid(pid, &st, 0);
    double dt = now_s() - t0;
    printf("{\"bytes\": %zu, \"seconds\": %.6f, \"mbps\": %.3f, \"rss_mib\": %.3f, \"ok\": %d}\n", got, dt,
           got / dt / 1e6, (peak_rss_kb() - base_rss) / 1024.0, got == want && buf != NULL);
    return got == want ? 0 : 1;
}
