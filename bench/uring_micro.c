/* bench/uring_micro.c: the send syscall of one tick, sendmmsg per socket vs one io_uring_enter.
 * Built and driven by bench/uring_micro.py (see there for what is measured and why).
 *
 *   uring_micro sink drain|hold              bind 127.0.0.1:0, print the port, then either
 *                                            drain every 2 ms (recvmmsg) or never read;
 *                                            on SIGTERM print the datagrams received
 *   uring_micro send MODE N TICKS TICK_US PORT [PAYLOAD]
 *       MODE: sendmmsg | sendto | uring-sendmsg | uring-send | uring-plain | uring-fixed | uring-sqpoll
 *       prints one line: key=value pairs (process CPU, system CPU, per-tick wall times)
 *
 * Raw io_uring syscalls (no liburing): setup, mmap the rings, fill SQEs, one enter per tick.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

static int sys_setup(unsigned entries, struct io_uring_params *p) {
    return (int)syscall(__NR_io_uring_setup, entries, p);
}
static int sys_enter(int fd, unsigned submit, unsigned complete, unsigned flags) {
    return (int)syscall(__NR_io_uring_enter, fd, submit, complete, flags, NULL, 0);
}
static int sys_register(int fd, unsigned op, void *arg, unsigned n) {
    return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

typedef struct {
    int fd;
    unsigned flags;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *sq_flags;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
} Ring;

static int ring_open(Ring *r, unsigned entries, unsigned flags, unsigned idle_ms) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags;
    p.sq_thread_idle = idle_ms;
    r->fd = sys_setup(entries, &p);
    if (r->fd < 0) return -1;
    r->flags = flags;
    size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) return -1;
    size_t sz = sq_sz > cq_sz ? sq_sz : cq_sz;
    char *q = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
    if (q == MAP_FAILED) return -1;
    r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED) return -1;
    r->sq_head = (unsigned *)(q + p.sq_off.head);
    r->sq_tail = (unsigned *)(q + p.sq_off.tail);
    r->sq_mask = (unsigned *)(q + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(q + p.sq_off.array);
    r->sq_flags = (unsigned *)(q + p.sq_off.flags);
    r->cq_head = (unsigned *)(q + p.cq_off.head);
    r->cq_tail = (unsigned *)(q + p.cq_off.tail);
    r->cq_mask = (unsigned *)(q + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(q + p.cq_off.cqes);
    return 0;
}

static double now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sys_cpu(unsigned long long *busy, unsigned long long *total) {
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[10] = {0};
    if (f == NULL || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                            &v[4], &v[5], &v[6], &v[7]) != 8) {
        *busy = *total = 0;
    } else {
        *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        *total = *busy + v[3] + v[4];
    }
    if (f) fclose(f);
}

static volatile sig_atomic_t stop;
static void on_term(int s) { stop = 1; }

static int sink(const char *how) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int drain = strcmp(how, "drain") == 0;
    if (drain) { /* as bench/sink.py: a deep queue and kernel timestamps */
        int big = 64 << 20, one = 1;
        if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
            setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    }
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) return 1;
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    signal(SIGTERM, on_term);
    unsigned long long got = 0;
    enum { B = 256 };
    static char bufs[B][2048], ctl[B][64];
    static struct mmsghdr m[B];
    static struct iovec iov[B];
    while (!stop) {
        if (drain) {
            for (;;) {
                for (int i = 0; i < B; i++) {
                    iov[i] = (struct iovec){bufs[i], sizeof bufs[i]};
                    memset(&m[i].msg_hdr, 0, sizeof m[i].msg_hdr);
                    m[i].msg_hdr.msg_iov = &iov[i];
                    m[i].msg_hdr.msg_iovlen = 1;
                    m[i].msg_hdr.msg_control = ctl[i];
                    m[i].msg_hdr.msg_controllen = sizeof ctl[i];
                }
                int r = recvmmsg(s, m, B, MSG_DONTWAIT, NULL);
                if (r <= 0) break;
                got += (unsigned long long)r;
            }
        }
        usleep(2000);
    }
    printf("%llu\n", got);
    return 0;
}

enum { M_SENDMMSG, M_SENDTO, M_U_SENDMSG, M_U_SEND, M_U_PLAIN, M_U_FIXED, M_U_SQPOLL };

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int send_main(int argc, char **argv) {
    const char *ms = argv[2];
    int n = atoi(argv[3]), ticks = atoi(argv[4]), tick_us = atoi(argv[5]), port = atoi(argv[6]);
    int plen = argc > 7 ? atoi(argv[7]) : 200;
    int mode = !strcmp(ms, "sendmmsg") ? M_SENDMMSG : !strcmp(ms, "sendto") ? M_SENDTO
             : !strcmp(ms, "uring-sendmsg") ? M_U_SENDMSG : !strcmp(ms, "uring-send") ? M_U_SEND
             : !strcmp(ms, "uring-plain") ? M_U_PLAIN : !strcmp(ms, "uring-fixed") ? M_U_FIXED : !strcmp(ms, "uring-sqpoll") ? M_U_SQPOLL : -1;
    if (mode < 0) return 2;
    int *fds = calloc((size_t)n, sizeof(int));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < n; i++) { /* as transport/udp.py: non-blocking, connected */
        fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0) {
            perror("socket");
            return 1;
        }
    }
    unsigned char *bufs = calloc((size_t)n, 1536);
    for (int i = 0; i < n; i++) memset(bufs + (size_t)i * 1536, i & 0xff, (size_t)plen);
    struct mmsghdr *msgs = calloc((size_t)n, sizeof *msgs);
    struct iovec *iov = calloc((size_t)n, sizeof *iov);
    for (int i = 0; i < n; i++) {
        iov[i] = (struct iovec){bufs + (size_t)i * 1536, (size_t)plen};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    Ring r = {.fd = -1};
    if (mode >= M_U_SENDMSG) {
        unsigned entries = 1;
        while (entries < (unsigned)n) entries <<= 1;
        unsigned flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
        if (mode == M_U_SQPOLL) flags = IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER;
        else if (mode == M_U_PLAIN) flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
        else flags |= IORING_SETUP_DEFER_TASKRUN;
        if (ring_open(&r, entries, flags, 2 /* ms */) < 0) {
            perror("io_uring_setup");
            return 1;
        }
        if (mode == M_U_FIXED && sys_register(r.fd, IORING_REGISTER_FILES, fds, (unsigned)n) < 0) {
            perror("register files");
            return 1;
        }
    }
    int warm = ticks / 10 + 5;
    double *walls = calloc((size_t)ticks, sizeof(double));
    unsigned long long sent = 0, errs = 0, enters = 0, b0 = 0, t0s = 0, b1, t1s;
    double cpu0 = 0, wall0 = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (int t = -warm; t < ticks; t++) {
        if (t == 0) {
            cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);
            wall0 = now(CLOCK_MONOTONIC);
            sys_cpu(&b0, &t0s);
            sent = errs = enters = 0;
        }
        double w0 = now(CLOCK_MONOTONIC);
        if (mode == M_SENDMMSG || mode == M_SENDTO) {
            for (int i = 0; i < n; i++) {
                int x = mode == M_SENDMMSG ? sendmmsg(fds[i], &msgs[i], 1, MSG_DONTWAIT)
                                           : (send(fds[i], iov[i].iov_base, iov[i].iov_len, MSG_DONTWAIT) >= 0);
                if (x == 1) sent++;
                else errs++;
            }
        } else {
            unsigned tail = *r.sq_tail, mask = *r.sq_mask;
            for (int i = 0; i < n; i++) {
                unsigned idx = (tail + (unsigned)i) & mask;
                struct io_uring_sqe *q = &r.sqes[idx];
                memset(q, 0, sizeof *q);
                if (mode == M_U_SENDMSG) {
                    q->opcode = IORING_OP_SENDMSG;
                    q->addr = (uint64_t)(uintptr_t)&msgs[i].msg_hdr;
                    q->len = 1;
                } else {
                    q->opcode = IORING_OP_SEND;
                    q->addr = (uint64_t)(uintptr_t)iov[i].iov_base;
                    q->len = (uint32_t)iov[i].iov_len;
                }
                q->fd = fds[i];
                if (mode == M_U_FIXED) {
                    q->fd = i;
                    q->flags = IOSQE_FIXED_FILE;
                }
                q->msg_flags = MSG_DONTWAIT; /* drop, never wait for room (as sendmmsg here) */
                q->user_data = (uint64_t)i;
                r.sq_array[idx] = idx;
            }
            __atomic_store_n(r.sq_tail, tail + (unsigned)n, __ATOMIC_RELEASE);
            if (mode == M_U_SQPOLL) {
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                if (__atomic_load_n(r.sq_flags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP) {
                    sys_enter(r.fd, 0, 0, IORING_ENTER_SQ_WAKEUP);
                    enters++;
                }
                /* reap by polling the CQ (the cost of the spin is ours and counted) */
            } else {
                int x = sys_enter(r.fd, (unsigned)n, (unsigned)n, IORING_ENTER_GETEVENTS);
                enters++;
                if (x != n) {
                    fprintf(stderr, "enter: %d %s\n", x, strerror(errno));
                    return 1;
                }
            }
            unsigned got = 0;
            while (got < (unsigned)n) {
                unsigned head = *r.cq_head, ctail = __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE);
                if (head == ctail) {
                    if (mode == M_U_SQPOLL) continue;
                    sys_enter(r.fd, 0, 1, IORING_ENTER_GETEVENTS);
                    enters++;
                    continue;
                }
                for (; head != ctail; head++, got++) {
                    struct io_uring_cqe *c = &r.cqes[head & *r.cq_mask];
                    if (c->res >= 0) sent++;
                    else errs++;
                }
                __atomic_store_n(r.cq_head, head, __ATOMIC_RELEASE);
            }
        }
        double w1 = now(CLOCK_MONOTONIC);
        if (t >= 0) walls[t] = (w1 - w0) * 1e6;
        if (tick_us > 0) {
            next.tv_nsec += (long)tick_us * 1000;
            while (next.tv_nsec >= 1000000000L) {
                next.tv_nsec -= 1000000000L;
                next.tv_sec++;
            }
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
    }
    double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0, wall = now(CLOCK_MONOTONIC) - wall0;
    sys_cpu(&b1, &t1s);
    qsort(walls, (size_t)ticks, sizeof(double), cmp_d);
    long hz = sysconf(_SC_CLK_TCK);
    printf("mode=%s n=%d ticks=%d sent=%llu errors=%llu enters=%llu cpu_s=%.6f wall_s=%.3f "
           "sys_busy_s=%.3f sys_total_s=%.3f tick_wall_p50_us=%.1f tick_wall_p10_us=%.1f tick_wall_p90_us=%.1f\n",
           ms, n, ticks, sent, errs, enters, cpu, wall, (double)(b1 - b0) / (double)hz,
           (double)(t1s - t0s) / (double)hz, walls[ticks / 2], walls[ticks / 10], walls[ticks * 9 / 10]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "sink")) return sink(argv[2]);
    if (argc >= 7 && !strcmp(argv[1], "send")) return send_main(argc, argv);
    fprintf(stderr, "usage: see bench/uring_micro.py\n");
    return 2;
}
