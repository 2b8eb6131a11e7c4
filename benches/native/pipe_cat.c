/* Native baseline for S3: BYTES written into cat while all of its output is read, with poll().
 * usage: pipe_cat BYTES PIPE_SIZE(0 = kernel default) CHUNK CAT_PATH
 * (from shared/limit-probes/pipe_cat.c) prints one JSON line. */
#include "common.h"
#include <poll.h>

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: pipe_cat BYTES PIPE_SIZE CHUNK CAT\n"); return 2; }
    size_t total = (size_t)atoll(argv[1]), chunk = (size_t)atol(argv[3]);
    int psz = atoi(argv[2]);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) die("pipe2");
    if (psz) { fcntl(in[1], F_SETPIPE_SZ, psz); fcntl(out[0], F_SETPIPE_SZ, psz); }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    spawn_attr_defaults(&at, 0);
    char *av[] = {"cat", NULL};
    pid_t pid;
    double t0 = now_s();
    if (posix_spawn(&pid, argv[4], &fa, &at, av, bench_envp)) die("posix_spawn");
    close(in[0]); close(out[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    char *wbuf = calloc(1, chunk), *rbuf = malloc(chunk);
    size_t sent = 0, got = 0;
    int eof = 0;
    while (!eof) {
        struct pollfd p[2] = {{out[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
        int n = sent < total ? 2 : 1;
        if (poll(p, n, -1) < 0 && errno != EINTR) die("poll");
        if (n == 2 && p[1].revents) {
            ssize_t w;
            while (sent < total && (w = write(in[1], wbuf, chunk < total - sent ? chunk : total - sent)) > 0) sent += w;
            if (sent == total) close(in[1]);
        }
        if (p[0].revents) {
            ssize_t r;
            while ((r = read(out[0], rbuf, chunk)) > 0) got += r;
            if (r == 0) eof = 1;
        }
    }
    int st;
    waitpid(pid, &st, 0);
    double dt = now_s() - t0;
    printf("{\"bytes\": %zu, \"seconds\": %.6f, \"mbps\": %.3f, \"ok\": %d}\n", got, dt, got / dt / 1e6,
           got == total && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return got == total ? 0 : 1;
}
