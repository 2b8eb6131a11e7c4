/* Native baseline for S10: a job runner doing what ferroproc.jobs does for each job, in C.
 *
 * usage: jobs -n N -j CONC [-m MAXBYTES] -- PROG ARGS...
 *
 * Each job: clone(CLONE_VM|CLONE_VFORK|CLONE_FILES|CLONE_PIDFD) on a private stack (ferroproc's
 * default spawn path), the child taking a private fd table with close_range(CLOSE_RANGE_UNSHARE)
 * and receiving its stdio over a socket pair (SCM_RIGHTS): stdin a /dev/null opened once and
 * shared, stdout and stderr pipes; in the child a new process group (setpgid), PR_SET_PDEATHSIG
 * SIGKILL with the check for a parent already gone, every signal at its default, an empty mask,
 * exec. The parent watches each job's pidfd and pipes in one epoll set, reads the output into a
 * per-slot buffer kept up to MAXBYTES (the rest counted), and when a job exits kills what is
 * left of its group while it is still a zombie (waitid WNOWAIT, kill(-pgid), then the reaping
 * waitid with rusage, as ferroproc's killGroupOnExit does), records its start time, run time,
 * status and usage, and starts the next job at once. Prints one JSON line. */
#include "common.h"
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif

struct job {
    int used, reaped, pidfd, out_r, err_r, open_reads;
    pid_t pid;
    double start_wall, start_mono, runtime;
    size_t kept, seen;
    char *buf;
    int status;
};

struct plan {
    int chan;
    pid_t parent;
    char *path;
    char **argv;
};

static struct plan P;
static int chan_send = -1;
static char *stack_top;

static int child(void *arg) {
    struct plan *p = arg;
    if (syscall(SYS_close_range, p->chan + 1, ~0U, CLOSE_RANGE_UNSHARE) < 0) _exit(126);
    if (p->chan > 0) syscall(SYS_close_range, 0, p->chan - 1, 0);
    char byte;
    struct iovec iov = {&byte, 1};
    union { char buf[CMSG_SPACE(3 * sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    if (recvmsg(p->chan, &msg, 0) < 0) _exit(126);
    close(p->chan);
    if (setpgid(0, 0) < 0) _exit(126);
    if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) _exit(126);
    if (syscall(SYS_getppid) != p->parent) syscall(SYS_kill, syscall(SYS_getpid), SIGKILL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    execve(p->path, p->argv, bench_envp);
    _exit(127);
}

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

static double wall_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void start_job(struct job *j, int devnull, int ep, int slot) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) die("pipe2");
    int src[3] = {devnull, out[1], err[1]};
    j->start_wall = wall_s();
    j->start_mono = now_s();
    send_stdio(src);
    int pidfd = -1;
    pid_t pid = clone(child, stack_top, CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD | SIGCHLD, &P, &pidfd);
    if (pid < 0) die("clone");
    close(out[1]);
    close(err[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    j->used = 1;
    j->reaped = 0;
    j->pid = pid;
    j->pidfd = pidfd;
    j->out_r = out[0];
    j->err_r = err[0];
    j->open_reads = 2;
    j->kept = j->seen = 0;
    int fds[3] = {pidfd, out[0], err[0]};
    for (int k = 0; k < 3; k++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = (uint64_t)slot * 4 + k};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[k], &e)) die("epoll_ctl");
    }
}

int main(int argc, char **argv) {
    int n = 100, conc = 1, opt;
    size_t max_bytes = 1 << 20;
    while ((opt = getopt(argc, argv, "n:j:m:")) != -1) {
        switch (opt) {
        case 'n': n = atoi(optarg); break;
        case 'j': conc = atoi(optarg); break;
        case 'm': max_bytes = (size_t)atol(optarg); break;
        default: fprintf(stderr, "bad option\n"); return 2;
        }
    }
    if (optind >= argc) { fprintf(stderr, "missing PROG\n"); return 2; }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv)) die("socketpair");
    chan_send = sv[0];
    P.chan = sv[1];
    P.parent = getpid();
    P.path = argv[optind];
    P.argv = argv + optind;
    stack_top = (char *)malloc(1 << 16) + (1 << 16);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) die("open /dev/null");
    struct job *jobs = calloc(conc, sizeof *jobs);
    for (int i = 0; i < conc; i++) jobs[i].buf = malloc(max_bytes ? max_bytes : 1);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[256];
    char scratch[65536];
    double cpu0 = cpu_s(), t0 = now_s(), runtimes = 0;
    int started = 0, done = 0, alive = 0, failures = 0;
    while (done < n) {
        for (int slot = 0; started < n && alive < conc && slot < conc; slot++) {
            if (jobs[slot].used) continue;
            start_job(&jobs[slot], devnull, ep, slot);
            started++;
            alive++;
        }
        int k = epoll_wait(ep, evs, 256, -1);
        if (k < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int i = 0; i < k; i++) {
            int slot = evs[i].data.u64 / 4, kind = evs[i].data.u64 % 4;
            struct job *j = &jobs[slot];
            if (!j->used) continue;
            if (kind == 0) {
                siginfo_t si;
                memset(&si, 0, sizeof si);
                if (waitid(P_PIDFD, j->pidfd, &si, WEXITED | WNOHANG | WNOWAIT) < 0) die("waitid");
                if (si.si_pid == 0) continue;
                kill(-j->pid, SIGKILL); /* the rest of its group, while it is a zombie */
                struct rusage ru;
                memset(&si, 0, sizeof si);
                if (syscall(SYS_waitid, P_PIDFD, j->pidfd, &si, WEXITED | WNOHANG, &ru) < 0) die("waitid");
                j->runtime = now_s() - j->start_mono;
                j->status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
                close(j->pidfd);
                j->pidfd = -1;
                j->reaped = 1;
            } else {
                int *fdp = kind == 1 ? &j->out_r : &j->err_r;
                if (*fdp < 0) continue;
                ssize_t r;
                while ((r = read(*fdp, scratch, sizeof scratch)) > 0) {
                    j->seen += r;
                    size_t room = max_bytes - j->kept;
                    size_t keep = (size_t)r < room ? (size_t)r : room;
                    memcpy(j->buf + j->kept, scratch, keep);
                    j->kept += keep;
                }
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    close(*fdp);
                    *fdp = -1;
                    j->open_reads--;
                }
            }
            if (j->reaped && j->open_reads == 0) {
                if (j->status != 0) failures++;
                runtimes += j->runtime;
                j->used = 0;
                alive--;
                done++;
                /* Start the next job in the same pass, as the runner does. */
                if (started < n) {
                    start_job(j, devnull, ep, slot);
                    started++;
                    alive++;
                }
            }
        }
    }
    double dt = now_s() - t0, cpu = cpu_s() - cpu0;
    printf("{\"n\": %d, \"seconds\": %.6f, \"rate\": %.3f, \"cpu\": %.6f, \"cpu_us\": %.3f, \"failures\": %d, "
           "\"mean_runtime_ms\": %.3f}\n",
           done, dt, done / dt, cpu, cpu / done * 1e6, failures, runtimes / done * 1e3);
    return failures ? 1 : 0;
}
