/* Native baseline for S1 (spawn rate), S2 (spawn rate from a 2 GiB parent), S6 (many
 * concurrent children), S8 (spawn rate against open fds) and S9 (every spawn option): spawn
 * PROG N times with at most CONC alive, each child watched through a pidfd and its pipes (or
 * PTY master) in one epoll set, as an engine would.
 *
 * usage: spawn -m spawn|vfork|fork|clonefiles -s pipes|pty|null [-C] [-O] -n N -c CONC [-M MiB]
 *              [-b SECONDS] [-R] [-H FDS -E CAT] [-K] -- PROG ARGS...
 *   -m  posix_spawn; clone(CLONE_VM|CLONE_VFORK) with our own child routine; fork(); or
 *       clonefiles: clone(CLONE_VM|CLONE_VFORK|CLONE_FILES|CLONE_PIDFD), the child taking a
 *       private fd table with close_range(CLOSE_RANGE_UNSHARE) and receiving its stdio over a
 *       socket pair (SCM_RIGHTS), as ferroproc's default path does
 *   -s  three pipes (stdin kept open until the child is reaped, stdout/stderr drained to EOF),
 *       a PTY (new session, slave as controlling terminal, master drained to EIO), or /dev/null
 *   -C  run the child as uid/gid 65534 with groups {65534} (needs -m vfork or fork; root only)
 *   -O  every option S9 sets, in the child (needs -m vfork or clonefiles): new process group,
 *       umask 077, three rlimits, our own nice value, every usable CPU, PDEATHSIG SIGTERM,
 *       no_new_privs; and in the parent, the group killed once the child is reaped
 *   -M  hold this much touched memory first;  -b  stop starting children after SECONDS
 *   -R  raise RLIMIT_NOFILE to the hard limit
 *   -H  before measuring, hold FDS open fds: FDS/8 live `CAT` children with three pipes and a
 *       pidfd each (started the same way, each known to be running once it has echoed a byte),
 *       then dup'd /dev/null fds up to FDS in all; after the measurement their stdin is closed
 *       and they are reaped
 *   -K  S6's curve: SIGKILL every child once all have started (PROG must outlive the start)
 * prints one JSON line. */
#include "common.h"
#include <dirent.h>
#include <grp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

enum { ST_PIPES, ST_PTY, ST_NULL };
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif

enum { M_SPAWN, M_VFORK, M_FORK, M_CLONEFILES };

struct child {
    pid_t pid;
    int pidfd, in_w, out_r, err_r; /* -1 when closed; for a PTY out_r is the master */
    int open_reads, reaped, used;
};

/* What the vfork/fork child routine needs, prepared before the child exists. */
struct plan {
    int stdio, creds, options;
    int src[3];
    int chan; /* clonefiles: the socket the child receives its stdio on */
    int nice;
    cpu_set_t cpus;
    char slave[64];
    char *path;
    char **argv;
};

static struct plan P;
static pid_t parent_pid;
static gid_t nobody_groups[1] = {65534};

/* S9's options, with raw syscalls as in ferroproc's child (async-signal-safe, no glibc
 * broadcast). The values are the ones benches/impl_twisted.py asks ferroproc for. */
static void child_options(struct plan *p) {
    static const struct rlimit64_ { unsigned long long cur, max; } lims[3] = {{1024, 1024}, {0, 0}, {60, 60}};
    static const int res[3] = {RLIMIT_NOFILE, RLIMIT_CORE, RLIMIT_CPU};
    if (setpgid(0, 0) < 0) _exit(123);
    umask(077);
    for (int i = 0; i < 3; i++)
        if (syscall(SYS_prlimit64, 0, res[i], &lims[i], NULL) < 0) _exit(124);
    if (syscall(SYS_setpriority, PRIO_PROCESS, 0, p->nice) < 0) _exit(124);
    if (syscall(SYS_sched_setaffinity, 0, sizeof p->cpus, &p->cpus) < 0) _exit(124);
    if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0) _exit(124);
    if (syscall(SYS_getppid) != parent_pid) syscall(SYS_kill, syscall(SYS_getpid), SIGTERM);
    if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) _exit(124);
}

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
    if (p->options) child_options(p);
    if (p->creds) {
        if (syscall(SYS_setgroups, 1, nobody_groups) < 0) _exit(120);
        if (syscall(SYS_setresgid, 65534, 65534, 65534) < 0) _exit(121);
        if (syscall(SYS_setresuid, 65534, 65534, 65534) < 0) _exit(122);
    }
    execve(p->path, p->argv, bench_envp);
    _exit(127);
}

/* The clonefiles child: a private fd table holding only the channel (fds 0..chan), then
 * nothing below it either, so the three fds received land on 0, 1 and 2 in the order sent;
 * every signal to its default (what posix_spawn's SETSIGDEF does), an empty mask, exec. */
static int child_clonefiles(void *arg) {
    struct plan *p = arg;
    if (syscall(SYS_close_range, p->chan + 1, ~0U, CLOSE_RANGE_UNSHARE) < 0) _exit(126);
    if (p->chan > 0) syscall(SYS_close_range, 0, p->chan - 1, 0);
    char byte;
    struct iovec iov = {&byte, 1};
    union { char buf[CMSG_SPACE(3 * sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    if (recvmsg(p->chan, &msg, 0) < 0) _exit(126);
    close(p->chan);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL); /* glibc refuses 32, 33 */
    if (p->options) child_options(p);
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    execve(p->path, p->argv, bench_envp);
    _exit(127);
}

/* The parent's end of the channel: made first, so both ends have low numbers. */
static int chan_send = -1;

static void send_stdio(const int src[3]) {
    char byte = 0;
    struct iovec iov = {&byte, 1};
    union { char buf[CMSG_SPACE(3 * sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(c), src, 3 * sizeof(int));
    if (sendmsg(chan_send, &msg, MSG_NOSIGNAL) < 0) die("sendmsg");
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
    int pidfd = -1;
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
    } else if (method == M_CLONEFILES) {
        if (!vfork_stack) vfork_stack = malloc(1 << 16);
        send_stdio(P.src);
        pidfd = -1;
        pid = clone(child_clonefiles, vfork_stack + (1 << 16),
                    CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD | SIGCHLD, &P, &pidfd);
        if (pid < 0) die("clone");
    } else {
        pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) child_routine(&P);
    }
    memset(c, 0, sizeof *c);
    c->used = 1;
    c->pid = pid;
    c->pidfd = pidfd >= 0 ? pidfd : pidfd_open_(pid);
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

static int count_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) die("opendir /proc/self/fd");
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') count++;
    closedir(d);
    return count - 1; /* the directory's own fd */
}

/* What -H holds: live cat children (three pipes and a pidfd each) and dup'd fds. */
struct held {
    struct child *kids;
    int nkids, *dups, ndups, fds_at_start;
};

static void hold_open_fds(int method, int total, char *cat_path, char *prog, char **prog_argv, struct held *h) {
    static char *cat_argv[] = {NULL, NULL};
    cat_argv[0] = cat_path;
    P.path = cat_path;
    P.argv = cat_argv;
    h->nkids = total / 8;
    h->kids = calloc(h->nkids ? h->nkids : 1, sizeof *h->kids);
    for (int i = 0; i < h->nkids; i++) {
        start_child(method, &h->kids[i]);
        if (write(h->kids[i].in_w, "x", 1) != 1) die("write");
    }
    for (int i = 0; i < h->nkids; i++) { /* every cat has started: none competes for the CPU later */
        char b;
        struct pollfd pf = {h->kids[i].out_r, POLLIN, 0};
        while (poll(&pf, 1, -1) < 0 && errno == EINTR) {}
        if (read(h->kids[i].out_r, &b, 1) != 1) die("read");
    }
    P.path = prog;
    P.argv = prog_argv;
    int have = count_open_fds();
    h->ndups = total > have ? total - have : 0;
    h->dups = calloc(h->ndups ? h->ndups : 1, sizeof *h->dups);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0) die("open /dev/null");
    for (int i = 0; i < h->ndups; i++) {
        h->dups[i] = i ? fcntl(null, F_DUPFD_CLOEXEC, 0) : null;
        if (h->dups[i] < 0) die("dup");
    }
    h->fds_at_start = count_open_fds();
}

static void release_held(struct held *h) {
    for (int i = 0; i < h->ndups; i++) close(h->dups[i]);
    for (int i = 0; i < h->nkids; i++) {
        struct child *c = &h->kids[i];
        close(c->in_w); /* cat sees EOF and exits */
        siginfo_t si;
        waitid(P_PIDFD, c->pidfd, &si, WEXITED);
        close(c->pidfd); close(c->out_r); close(c->err_r);
    }
}

int main(int argc, char **argv) {
    int method = M_SPAWN, n = 100, conc = 1, opt, raise_nofile = 0, hold_fds = 0, kill_all = 0;
    size_t mib = 0;
    double budget = 0;
    char *cat_path = NULL;
    P.stdio = ST_PIPES;
    while ((opt = getopt(argc, argv, "m:s:COn:c:M:b:RH:E:K")) != -1) {
        switch (opt) {
        case 'm':
            method = !strcmp(optarg, "spawn")        ? M_SPAWN
                     : !strcmp(optarg, "vfork")      ? M_VFORK
                     : !strcmp(optarg, "clonefiles") ? M_CLONEFILES
                                                     : M_FORK;
            break;
        case 's': P.stdio = !strcmp(optarg, "pipes") ? ST_PIPES : !strcmp(optarg, "pty") ? ST_PTY : ST_NULL; break;
        case 'C': P.creds = 1; break;
        case 'n': n = atoi(optarg); break;
        case 'c': conc = atoi(optarg); break;
        case 'M': mib = (size_t)atol(optarg); break;
        case 'b': budget = atof(optarg); break;
        case 'R': raise_nofile = 1; break;
        case 'O': P.options = 1; break;
        case 'H': hold_fds = atoi(optarg); break;
        case 'E': cat_path = optarg; break;
        case 'K': kill_all = 1; break;
        default: fprintf(stderr, "bad option\n"); return 2;
        }
    }
    if (optind >= argc) { fprintf(stderr, "missing PROG\n"); return 2; }
    if (P.creds && method == M_SPAWN) { fprintf(stderr, "-C needs -m vfork or fork\n"); return 2; }
    if (P.options && method != M_VFORK && method != M_CLONEFILES) { fprintf(stderr, "-O needs -m vfork or clonefiles\n"); return 2; }
    if (P.creds && method == M_CLONEFILES) { fprintf(stderr, "-C is not done with -m clonefiles\n"); return 2; }
    if (method == M_CLONEFILES && P.stdio == ST_PTY) { fprintf(stderr, "-m clonefiles takes pipes or null\n"); return 2; }
    if (hold_fds && !cat_path) { fprintf(stderr, "-H needs -E CAT\n"); return 2; }
    if (method == M_CLONEFILES) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv)) die("socketpair");
        chan_send = sv[0];
        P.chan = sv[1];
    }
    parent_pid = getpid();
    P.nice = getpriority(PRIO_PROCESS, 0);
    sched_getaffinity(0, sizeof P.cpus, &P.cpus);
    if (raise_nofile) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    hold_memory(mib);
    struct held held = {0};
    if (hold_fds) hold_open_fds(method, hold_fds, cat_path, P.path, argv + optind, &held);
    else held.fds_at_start = count_open_fds();
    P.path = argv[optind];
    P.argv = argv + optind;
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
            if (started == n) {
                start_all = now_s() - t0;
                if (kill_all)
                    for (int i = 0; i < conc; i++)
                        if (kids[i].used && !kids[i].reaped) syscall(SYS_pidfd_send_signal, kids[i].pidfd, SIGKILL, NULL, 0);
            }
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
                if (kill_all ? !(si.si_code == CLD_KILLED && si.si_status == SIGKILL)
                             : (si.si_code != CLD_EXITED || si.si_status != 0))
                    failures++;
                if (P.options) kill(-c->pid, SIGKILL); /* the group, as killGroupOnExit does */
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
    release_held(&held);
    printf("{\"n\": %d, \"seconds\": %.6f, \"rate\": %.3f, \"start_all\": %.6f, \"cpu\": %.6f, \"per_event_us\": %.3f, "
           "\"rss_mib\": %.3f, \"threads\": 1, \"failures\": %d, \"completed\": %d, \"fds\": %d, \"held_children\": %d}\n",
           done, dt, done / dt, start_all, cpu_s() - cpu0, (cpu_s() - cpu0) / done * 1e6, (peak_rss_kb() - base_rss) / 1024.0, failures,
           done - failures, held.fds_at_start, held.nkids);
    return failures ? 1 : 0;
}
