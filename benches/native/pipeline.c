/* Native baseline for S7: `head -c BYTES /dev/zero | cat | wc -c` wired child to child with
 * pipe() + posix_spawn, exactly what a shell does; the parent only reads wc's answer.
 * usage: pipeline BYTES HEAD CAT WC  -- one JSON line. */
#include "common.h"

static pid_t spawn_io(const char *path, char **av, int in, int out) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    if (in >= 0) posix_spawn_file_actions_adddup2(&fa, in, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    spawn_attr_defaults(&at, 0);
    pid_t pid;
    if (posix_spawn(&pid, path, &fa, &at, av, bench_envp)) die("posix_spawn");
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return pid;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: pipeline BYTES HEAD CAT WC\n"); return 2; }
    int p1[2], p2[2], p3[2];
    if (pipe2(p1, O_CLOEXEC) || pipe2(p2, O_CLOEXEC) || pipe2(p3, O_CLOEXEC)) die("pipe2");
    char *a_av[] = {"head", "-c", argv[1], "/dev/zero", NULL}, *b_av[] = {"cat", NULL}, *c_av[] = {"wc", "-c", NULL};
    double t0 = now_s();
    pid_t a = spawn_io(argv[2], a_av, -1, p1[1]);
    pid_t b = spawn_io(argv[3], b_av, p1[0], p2[1]);
    pid_t c = spawn_io(argv[4], c_av, p2[0], p3[1]);
    close(p1[0]); close(p1[1]); close(p2[0]); close(p2[1]); close(p3[1]);
    char buf[256];
    size_t got = 0;
    ssize_t r;
    while ((r = read(p3[0], buf + got, sizeof buf - 1 - got)) > 0) got += r;
    buf[got] = 0;
    int st, bad = 0;
    pid_t kids[3] = {a, b, c};
    for (int i = 0; i < 3; i++) { waitpid(kids[i], &st, 0); bad |= !WIFEXITED(st) || WEXITSTATUS(st); }
    double dt = now_s() - t0;
    unsigned long long count = strtoull(buf, NULL, 10), want = strtoull(argv[1], NULL, 10);
    printf("{\"bytes\": %llu, \"seconds\": %.6f, \"mbps\": %.3f, \"ok\": %d}\n", count, dt, count / dt / 1e6,
           count == want && !bad);
    return count == want ? 0 : 1;
}
