/* Native baseline for S1 (spawn rate), S2 (spawn rate from a 2 GiB parent) and S6 (many
 * concurrent children): spawn PROG N times with at most CONC alive, each child watched
 * through a pidfd and its pipes (or PTY master) in one epoll set, as an engine would.
 *
 * usage: spawn -m spawn|vfork|fork -s pipes|pty|null [-C] -n N -c CONC [-M MiB] [-b SECONDS]
 *              [-R] -- PROG ARGS...
 *   -m  posix_spawn; clone(CLONE_VM|CLONE_VFORK) with our own child routine; or fork()
 *   -s  three pipes (stdin kept open until the child is reaped, stdout/stderr drained to EOF),
 *       a PTY (new session, slave as controlling terminal, master drained to EIO), or /dev/null
 *   -C  run the child as uid/gid 65534 with groups {65534} (needs -m vfork or fork; root only)
 *   -M  hold this much touched memory first;  -b  stop starting children after SECONDS
 *   -R  raise RLIMIT_NOFILE to the hard limit
 * prints one JSON line. */
#include "common.h"
#include <grp.h>
#include <sys/epoll.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

enum { ST_PIPES, ST_PTY, ST_NULL };
enum { M_SPAWN, M_VFORK, M_FORK };

struct child {
    pid_t pid;
    int pidfd, in_w, out_r, err_r; /* -1 when closed; for a PTY out_r is the master */
    int open_reads, reaped, used;
};

/* What the vfork/fork child routine needs, prepared before the child exists. */
struct plan {
    int stdio, creds;
    int src[3];
    char slave[64];
    char *path;
    char **argv;
};

static struct plan P;
static gid_t nobody_groups[1] = {65534};

static int child_routine(void *arg) {
    struct plan *p = arg;
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    if (p->stdio == ST_PTY) {
        if (setsid() < 0) _exit(126);
        int fd = open(p->slave, O_RDWR); /* first tty opened by a session leader: ctty */
        if (fd < 0) _exit(126);
        dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
        if (fd > 2) close(fd);
    } else {
        for (int i = 0; i < 3; i++) dup2(p->src[i], i); /* sources are CLOEXEC, targets not */
    }
    if (p->creds) {
        if (syscall(SYS_setgroups, 1, nobody_groups) < 0) _exit(120);
        if (syscall(SYS_setresgid, 65534, 65534, 65534) < 0) _exit(121);
        if (syscall(SYS_setresuid, 65534, 65534, 65534) < 0) _exit(122);
    }
    execve(p->path, p->argv, bench_envp);
    _exit(127);
}

static char *vfork_stack;

static pid_t start_child(int method, struct child *c) {
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, master = -1, devnull = -1;
    P.stdio = P.stdio; /* set by main */
    if (P.stdio == ST_PIPES) {
        if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) die("pipe2");
        P.src[0] = in[0]; P.src[1] = out[1]; P.src[2] = err[1];
    } else if (P.stdio == ST_NULL) {
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        P.src[0] = P.src[1] = P.src[2] = devnull;
    } else {
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) || unlockpt(master) || ptsname_r(master, P.slave, sizeof P.slave))
            die("pty");
    }
    pid_t pid = -1;
    if (method == M_SPAWN) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        posix_spawn_file_actions_init(&fa);
        if (P.stdio == ST_PTY) {
            posix_spawn_file_actions_addopen(&fa, 0, P.slave, O_RDWR, 0);
            posix_spawn_file_actions_adddup2(&fa, 0, 1);
            posix_spawn_file_actions_adddup2(&fa, 0, 2);
        } else {
            for (int i = 0; i < 3; i++) posix_spawn_file_actions_adddup2(&fa, P.src[i], i);
        }
        spawn_attr_defaults(&at, P.stdio == ST_PTY ? POSIX_SPAWN_SETSID : 0);
        int rc = posix_spawn(&pid, P.path, &fa, &at, P.argv, bench_envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        if (rc) { errno = rc; die("posix_spawn"); }
    } else if (method == M_VFORK) {
        if (!vfork_stack) vfork_stack = malloc(1 << 16);
        pid = clone(child_routine, vfork_stack + (1 << 16), CLONE_VM | CLONE_VFORK | SIGCHLD, &P);
        if (pid < 0) die("clone");
    } else {
        pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) child_routine(&P);
    }
    memset(c, 0, sizeof *c);
    c->used = 1;
    c->pid = pid;
    c->pidfd = pidfd_open_(pid);
    if (c->pidfd < 0) die("pidfd_open");
    c->in_w = c->out_r = c->err_r = -1;
    if (P.stdio == ST_PIPES) {
        close(in[0]); close(out[1]); close(err[1]);
        c->in_w = in[1]; c->out_r = out[0]; c->err_r = err[0];
        fcntl(c->out_r, F_SETFL, O_NONBLOCK);
        fcntl(c->err_r, F_SETFL, O_NONBLOCK);
        c->open_reads = 2;
    } else if (P.stdio == ST_PTY) {
        fcntl(master, F_SETFL, O_NONBLOCK);
        c->out_r = master;
        c->open_reads = 1;
    } else {
        close(devnull);
    }
    return pid;
}

int main(int argc, char **argv) {
    int method = M_SPAWN, n = 100, conc = 1, opt, raise_nofile = 0;
    size_t mib = 0;
    double budget = 0;
    P.stdio = ST_PIPES;
    while ((opt = getopt(argc, argv, "m:s:Cn:c:M:b:R")) != -1) {
        switch (opt) {
        case 'm': method = !strcmp(optarg, "spawn") ? M_SPAWN : !strcmp(optarg, "vfork") ? M_VFORK : M_FORK; break;
        case 's': P.stdio = !strcmp(optarg, "pipes") ? ST_PIPES : !strcmp(optarg, "pty") ? ST_PTY : ST_NULL; break;
        case 'C': P.creds = 1; break;
        case 'n': n = atoi(optarg); break;
        case 'c': conc = atoi(optarg); break;
        case 'M': mib = (size_t)atol(optarg); break;
        case 'b': budget = atof(optarg); break;
        case 'R': raise_nofile = 1; break;
        default: fprintf(stderr, "bad option\n"); return 2;
        }
    }
    if (optind >= argc) { fprintf(stderr, "missing PROG\n"); return 2; }
    if (P.creds && method == M_SPAWN) { fprintf(stderr, "-C needs -m vfork or fork\n"); return 2; }
    P.path = argv[optind];
    P.argv = argv + optind;
    if (raise_nofile) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    hold_memory(mib);
    struct child *kids = calloc(conc, sizeof *kids);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event *evs = calloc(256, sizeof *evs);
    char buf[65536];
    long base_rss = rss_baseline_kb();
    double cpu0 = cpu_s(), t0 = now_s(), start_all = 0;
    int started = 0, done = 0, alive = 0, failures = 0, stop_starting = 0;

/* token = slot * 4 + kind (0 pidfd, 1 stdout/master, 2 stderr) */
#define ADD(fd, tok) do { struct epoll_event e = {.events = EPOLLIN, .data.u64 = (tok)}; \
        if (epoll_ctl(ep, EPOLL_CTL_ADD, (fd), &e)) die("epoll_ctl"); } while (0)

    while (done < started || (!stop_starting && started < n)) {
        while (!stop_starting && started < n && alive < conc) {
            int slot = 0;
            while (kids[slot].used) slot++;
            struct child *c = &kids[slot];
            start_child(method, c);
            ADD(c->pidfd, (uint64_t)slot * 4);
            if (c->out_r >= 0) ADD(c->out_r, (uint64_t)slot * 4 + 1);
            if (c->err_r >= 0) ADD(c->err_r, (uint64_t)slot * 4 + 2);
            started++; alive++;
            if (started == n) start_all = now_s() - t0;
            if (budget > 0 && now_s() - t0 > budget) { stop_starting = 1; start_all = now_s() - t0; }
        }
        int k = epoll_wait(ep, evs, 256, -1);
        if (k < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int i = 0; i < k; i++) {
            int slot = evs[i].data.u64 / 4, kind = evs[i].data.u64 % 4;
            struct child *c = &kids[slot];
            if (!c->used) continue;
            if (kind == 0) {
                siginfo_t si;
                memset(&si, 0, sizeof si);
                if (waitid(P_PIDFD, c->pidfd, &si, WEXITED | WNOHANG) < 0) die("waitid");
                if (si.si_pid == 0) continue;
                if (si.si_code != CLD_EXITED || si.si_status != 0) failures++;
                close(c->pidfd); /* closing removes it from the epoll set */
                c->pidfd = -1;
                c->reaped = 1;
                if (c->in_w >= 0) { close(c->in_w); c->in_w = -1; }
            } else {
                int *fdp = kind == 1 ? &c->out_r : &c->err_r;
                if (*fdp < 0) continue;
                ssize_t r;
                while ((r = read(*fdp, buf, sizeof buf)) > 0) {}
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { /* EOF, or EIO on a PTY */
                    close(*fdp);
                    *fdp = -1;
                    c->open_reads--;
                }
            }
            if (c->reaped && c->open_reads == 0) {
                c->used = 0;
                alive--;
                done++;
            }
        }
    }
    double dt = now_s() - t0;
    printf("{\"n\": %d, \"seconds\": %.6f, \"rate\": %.3f, \"start_all\": %.6f, \"cpu\": %.6f, \"per_event_us\": %.3f, "
           "\"rss_mib\": %.3f, \"threads\": 1, \"failures\": %d, \"completed\": %d}\n",
           done, dt, done / dt, start_all, cpu_s() - cpu0, (cpu_s() - cpu0) / done * 1e6, (peak_rss_kb() - base_rss) / 1024.0, failures,
           done - failures);
    return failures ? 1 : 0;
}
