/* The io_uring send backend of Batch.flush (docs/decisions/0021-io-uring-flush.md).
 *
 * Every voice connection has its own UDP socket (docs/discord-voice.md §1.8), so the sendmmsg
 * backend makes one syscall per stream per tick. Here a tick's datagrams are IORING_OP_SEND
 * requests on one ring and one io_uring_enter submits them and reaps their completions:
 * bench/uring_micro.py measured 0.8-1.1 µs of CPU less per datagram at 300 sockets
 * (docs/PERFORMANCE.md, "io_uring"). No liburing: the few raw syscalls below are all it takes,
 * and no new build dependency. No SQPOLL (its kernel thread polls a core) and no registered
 * files (sockets come and go with connections; the saving was within noise).
 *
 * Only the thread that flushes touches the ring, and never two at a time (the Batch is one
 * tick's, flushed by its owner), so there is no locking. The ring belongs to the first thread
 * that flushes (SINGLE_ISSUER): a flush from another thread is refused by the kernel (EEXIST),
 * and the Batch then goes on with sendmmsg, as it does after a fork (the child would share the
 * parent's ring memory).
 */
#define _GNU_SOURCE
#include "_uring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Requests per io_uring_enter; a bigger tick is submitted in several (one syscall per 256
 * datagrams is already noise). */
#define RING_ENTRIES 256u
/* How long a flush waits for completions that are not inline (none are expected: a
 * non-blocking send completes at submission) before it gives up on the ring. */
#define WAIT_NS 200000000L
/* A result slot whose request is out (no completion yet). */
#define PENDING INT32_MIN

struct UringTx {
    int fd;
    pid_t pid;
    int ext_arg;  /* IORING_FEAT_EXT_ARG: io_uring_enter takes a timeout */
    int disabled; /* created R_DISABLED: enabled by the first flush, on the flushing thread */
    unsigned entries;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *rings;
    size_t rings_size, sqes_size;
    int *res;
    size_t res_cap;
};

static int sys_setup(unsigned entries, struct io_uring_params *p) {
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags, void *arg, size_t argsz) {
    return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags, arg, argsz);
}

void uring_tx_close(UringTx *u) {
    if (u == NULL) return;
    if (u->sqes != NULL && u->sqes != MAP_FAILED) munmap(u->sqes, u->sqes_size);
    if (u->rings != NULL && u->rings != MAP_FAILED) munmap(u->rings, u->rings_size);
    if (u->fd >= 0) close(u->fd);
    free(u->res);
    free(u);
}

static int supports_send(int fd) {
    size_t size = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *p = calloc(1, size);
    if (p == NULL) return 0;
    int ok = syscall(__NR_io_uring_register, fd, IORING_REGISTER_PROBE, p, 256) == 0 &&
             p->last_op >= IORING_OP_SEND && (p->ops[IORING_OP_SEND].flags & IO_URING_OP_SUPPORTED);
    free(p);
    return ok;
}

UringTx *uring_tx_open(int *why) {
    UringTx *u = calloc(1, sizeof *u);
    if (u == NULL) {
        *why = ENOMEM;
        return NULL;
    }
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* SUBMIT_ALL: a bad request (a closed socket) fails alone instead of ending the
     * submission. COOP_TASKRUN: no interrupt to run completion work, we reap in the same call.
     * SINGLE_ISSUER + DEFER_TASKRUN: completions without the ring's locking and wake-ups, about
     * 0.3 µs a datagram (bench/uring_micro.py, uring-send against uring-plain); the submitting
     * thread is fixed when the ring is enabled (R_DISABLED until the first flush, which is on
     * the thread that flushes). Older kernels refuse a flag (EINVAL): then fewer of them. */
    static const unsigned tries[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        0,
    };
    u->fd = -1;
    for (size_t t = 0; t < sizeof tries / sizeof tries[0]; t++) {
        memset(&p, 0, sizeof p);
        p.flags = tries[t];
        u->fd = sys_setup(RING_ENTRIES, &p);
        if (u->fd >= 0 || errno != EINVAL) break;
    }
    if (u->fd < 0) goto fail;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !supports_send(u->fd)) {
        errno = EOPNOTSUPP;
        goto fail;
    }
    u->pid = getpid();
    u->disabled = (p.flags & IORING_SETUP_R_DISABLED) != 0;
    u->ext_arg = (p.features & IORING_FEAT_EXT_ARG) != 0;
    u->entries = p.sq_entries;
    size_t sq = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    u->rings_size = sq > cq ? sq : cq;
    u->rings = mmap(NULL, u->rings_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                    IORING_OFF_SQ_RING);
    if (u->rings == MAP_FAILED) goto fail;
    u->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = mmap(NULL, u->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                   IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED) goto fail;
    char *r = u->rings;
    u->sq_head = (unsigned *)(r + p.sq_off.head);
    u->sq_tail = (unsigned *)(r + p.sq_off.tail);
    u->sq_mask = (unsigned *)(r + p.sq_off.ring_mask);
    u->sq_array = (unsigned *)(r + p.sq_off.array);
    u->cq_head = (unsigned *)(r + p.cq_off.head);
    u->cq_tail = (unsigned *)(r + p.cq_off.tail);
    u->cq_mask = (unsigned *)(r + p.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(r + p.cq_off.cqes);
    return u;
fail:
    *why = errno;
    uring_tx_close(u);
    return NULL;
}

/* io_uring_enter(submit, wait for `want` completions), the wait bounded by WAIT_NS where the
 * kernel takes a timeout (with a submission, the count submitted is returned even then). */
static int enter_wait(UringTx *u, unsigned submit, unsigned want) {
    if (!u->ext_arg) return sys_enter(u->fd, submit, want, IORING_ENTER_GETEVENTS, NULL, 0);
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = WAIT_NS};
    struct io_uring_getevents_arg arg = {.ts = (uint64_t)(uintptr_t)&ts};
    return sys_enter(u->fd, submit, want, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
}

/* Wait for completions; -1 when the ring is not usable any more. */
static int wait_some(UringTx *u, unsigned want) {
    for (;;) {
        if (enter_wait(u, 0, want) >= 0) return 0;
        if (errno != EINTR) return -1; /* ETIME included: something is stuck, stop using it */
    }
}

/* Reap what has completed into res (by the index in user_data); the count reaped. */
static unsigned reap(UringTx *u) {
    unsigned head = *u->cq_head, tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE), got = 0;
    for (; head != tail; head++, got++) {
        const struct io_uring_cqe *c = &u->cqes[head & *u->cq_mask];
        if (c->user_data < u->res_cap) u->res[c->user_data] = c->res;
    }
    __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
    return got;
}

size_t uring_tx_send(UringTx *u, size_t n, const char *fd, size_t fd_stride, const struct mmsghdr *msgs,
                     const int **results, int *broken) {
    *broken = 0;
    *results = u->res;
    if (u->pid != getpid()) { /* a forked child shares the parent's ring memory: never touch it */
        *broken = 1;
        return 0;
    }
    if (u->disabled) {
        if (syscall(__NR_io_uring_register, u->fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
            *broken = 1;
            return 0;
        }
        u->disabled = 0;
    }
    if (n > u->res_cap) {
        int *res = realloc(u->res, n * sizeof(int));
        if (res == NULL) return 0; /* the caller sends them all itself this time */
        u->res = res;
        u->res_cap = n;
        *results = res;
    }
    size_t done = 0;
    while (done < n) {
        size_t end = n - done > u->entries ? done + u->entries : n;
        unsigned tail = *u->sq_tail, mask = *u->sq_mask, queued = 0;
        for (size_t i = done; i < end; i++) {
            int s;
            memcpy(&s, fd + i * fd_stride, sizeof s);
            if (s < 0) {
                u->res[i] = -EBADF;
                continue;
            }
            unsigned idx = (tail + queued++) & mask;
            struct io_uring_sqe *q = &u->sqes[idx];
            memset(q, 0, sizeof *q);
            q->opcode = IORING_OP_SEND;
            q->fd = s;
            q->addr = (uint64_t)(uintptr_t)msgs[i].msg_hdr.msg_iov[0].iov_base;
            q->len = (uint32_t)msgs[i].msg_hdr.msg_iov[0].iov_len;
            q->msg_flags = MSG_DONTWAIT; /* as sendmmsg: what the kernel cannot queue is dropped */
            q->user_data = (uint64_t)i;
            u->sq_array[idx] = idx;
            u->res[i] = PENDING;
        }
        if (queued == 0) {
            done = end;
            continue;
        }
        __atomic_store_n(u->sq_tail, tail + queued, __ATOMIC_RELEASE);
        int r, err = 0;
        do {
            r = enter_wait(u, queued, queued);
            err = r < 0 ? errno : 0;
        } while (err == EINTR && __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE) == tail);
        /* What the kernel took is in flight; what it did not take (an error before or during
         * submission; without SUBMIT_ALL, the requests after a failed one) is taken back:
         * nobody else reads this ring's tail (no SQPOLL). */
        unsigned taken = __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE) - tail;
        if (taken < queued) __atomic_store_n(u->sq_tail, tail + taken, __ATOMIC_RELEASE);
        unsigned got = reap(u);
        while (got < taken) {
            if (wait_some(u, taken - got) < 0) {
                /* The requests still out may or may not have been sent: they count as failed,
                 * and the ring is dropped so that a late completion cannot land in a later
                 * flush's results. */
                for (size_t i = done; i < end; i++)
                    if (u->res[i] == PENDING) u->res[i] = -EIO;
                *broken = 1;
                return end;
            }
            got += reap(u);
        }
        if (taken < queued) {
            size_t next = done; /* the first datagram the kernel did not take */
            while (next < end && u->res[next] != PENDING) next++;
            if (err != 0 && err != EINTR) { /* EAGAIN/EBUSY: short of memory now; else worse */
                *broken = err != EAGAIN && err != EBUSY;
                return next;
            }
            if (taken == 0 && err == 0) return next; /* no progress: never spin */
            done = next; /* taken back, submitted again */
            continue;
        }
        done = end;
    }
    return n;
}
