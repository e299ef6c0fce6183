/* The io_uring send backend of Batch.flush (docs/decisions/0021-io-uring-flush.md). */
#ifndef AUDIONODE_URING_H
#define AUDIONODE_URING_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct UringTx UringTx;

/* A ring for sending, or NULL when io_uring cannot be used here (io_uring_setup refused:
 * kernel.io_uring_disabled, a seccomp filter, an old kernel; or no IORING_OP_SEND); then
 * *why is the errno. */
UringTx *uring_tx_open(int *why);
void uring_tx_close(UringTx *u);

/* Send msgs[i] (one datagram each: its first iovec) on the socket whose descriptor (an int) is
 * at fd + i * fd_stride bytes (a field of the caller's entries), with MSG_DONTWAIT, for i < n; callable without the GIL. A negative fd is not sent (result -EBADF).
 * Every datagram is one IORING_OP_SEND; one io_uring_enter submits up to the ring's size and
 * waits for their completions (inline for a non-blocking UDP send). *results points at the
 * results, bytes sent or -errno, in msgs' order. Returns how many leading datagrams have a
 * result: n, or fewer when the ring refused a submission (the caller sends the rest another
 * way). *broken is set when the ring must not be used again (then close it). */
size_t uring_tx_send(UringTx *u, size_t n, const char *fd, size_t fd_stride, const struct mmsghdr *msgs,
                     const int **results, int *broken);

#endif
