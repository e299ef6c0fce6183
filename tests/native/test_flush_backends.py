"""``Batch.flush``'s two send backends (docs/decisions/0021-io-uring-flush.md): io_uring (one
``io_uring_enter`` per tick) and sendmmsg (one syscall per socket) put the same datagrams on the
wire in the same order and count the same failures, for more streams than the ring holds in one
submission; ``auto`` falls back to sendmmsg where io_uring cannot be set up, and a forked child
does not touch its parent's ring."""

from __future__ import annotations

import errno
import os
import resource
import socket
import threading
from collections.abc import Iterator

import pytest

from audionode.native import _packet
from audionode.voice.crypto import AES_GCM_MODE, XCHACHA_MODE, cipher_for
from audionode.voice.packetizer import SILENCE_FRAME, NativePacketizer, Packetizer

from .test_packet import CountingDave, recv_all


def uring_or_skip() -> _packet.Batch:
    try:
        return _packet.Batch(backend="io_uring")
    except OSError as exc:  # io_uring is optional: a kernel or sandbox without it uses sendmmsg
        pytest.skip(f"io_uring unavailable here: {exc}")


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    rx.bind(("127.0.0.1", 0))
    yield rx
    rx.close()


def drain(rx: socket.socket) -> list[bytes]:
    out = []
    rx.setblocking(False)
    try:
        while True:
            out.append(rx.recv(2048))
    except BlockingIOError:
        return out
    finally:
        rx.setblocking(True)


def test_both_backends_send_the_same_bytes_and_count_the_same_failures(
    receiver: socket.socket,
) -> None:
    """300 streams (more than one 256-entry submission), each on its own socket, plus three on a
    shared socket, one on a closed descriptor and one on a pipe (not a socket): three ticks per
    backend, on twin channels with the same keys and counters. The receiver gets the same
    datagrams in the same order from both, and the Python packetizer's bytes; the closed
    descriptor and the pipe are counted as send errors, once per tick, and stop nothing else."""
    batches = {"io_uring": uring_or_skip(), "sendmmsg": _packet.Batch(backend="sendmmsg")}
    assert batches["io_uring"].backend == "io_uring"
    assert batches["sendmmsg"].backend == "sendmmsg"
    own = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(300)]
    shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in [*own, shared]:
        s.connect(receiver.getsockname())
    pipe_r, pipe_w = os.pipe()
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead_fd = dead.fileno()  # closed; nothing opened after it could take its number
    dead.close()
    fds = [s.fileno() for s in own[:150]] + [shared.fileno()] * 3 + [dead_fd, pipe_w]
    fds += [s.fileno() for s in own[150:]]
    bad = {153, 154}
    keys = [os.urandom(32) for _ in fds]
    modes = [AES_GCM_MODE if i % 2 else XCHACHA_MODE for i in range(len(fds))]

    def channels() -> list[NativePacketizer]:
        out = []
        for i, (key, mode) in enumerate(zip(keys, modes, strict=True)):
            nat = NativePacketizer(5000 + i, cipher_for(mode, key), sequence=65534, timestamp=7)
            nat.nonce = 2**32 - 2
            if i % 3 == 0:
                nat.set_encryptor(CountingDave())
            out.append(nat)
        return out

    python = [
        Packetizer(5000 + i, cipher_for(mode, key), sequence=65534, timestamp=7)
        for i, (key, mode) in enumerate(zip(keys, modes, strict=True))
    ]
    for i, py in enumerate(python):
        py.nonce = 2**32 - 2
        if i % 3 == 0:
            py.set_encryptor(CountingDave())
    ticks = [
        [
            SILENCE_FRAME if (i + t) % 5 == 0 else os.urandom(20 + (i * 7 + t) % 300)
            for i in range(len(fds))
        ]
        for t in range(3)
    ]
    try:
        wire: dict[str, list[bytes]] = {}
        counters: dict[str, list[tuple[int, int]]] = {}
        for name, batch in batches.items():
            chans = channels()
            got = []
            for frames in ticks:
                for nat, frame, fd in zip(chans, frames, fds, strict=True):
                    assert batch.add(nat.channel, frame, fd)
                assert batch.flush() == len(fds) - len(bad)
                got += drain(receiver)
            wire[name] = got
            counters[name] = [(c.channel.sent, c.channel.send_errors) for c in chans]
            assert batch.backend == name  # a refused datagram does not drop the ring
        expected = [
            py.packet(frame)
            for frames in ticks
            for i, (py, frame) in enumerate(zip(python, frames, strict=True))
            if i not in bad
        ]
        assert wire["io_uring"] == wire["sendmmsg"] == expected
        assert counters["io_uring"] == counters["sendmmsg"]
        assert [c for i, c in enumerate(counters["io_uring"]) if i in bad] == [(0, 3), (0, 3)]
        assert all(c == (3, 0) for i, c in enumerate(counters["io_uring"]) if i not in bad)
        os.set_blocking(pipe_r, False)  # nothing reached the pipe
        with pytest.raises(BlockingIOError):
            os.read(pipe_r, 1)
    finally:
        for s in [*own, shared]:
            s.close()
        os.close(pipe_r)
        os.close(pipe_w)


def test_auto_falls_back_to_sendmmsg_when_io_uring_cannot_be_set_up(
    receiver: socket.socket,
) -> None:
    """No descriptor left for the ring (RLIMIT_NOFILE at the lowest free one): io_uring_setup
    fails with EMFILE, ``io_uring`` says so, ``auto`` sends with sendmmsg."""
    uring_or_skip()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(receiver.getsockname())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest = os.dup(0)
    os.close(lowest)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, hard))
        with pytest.raises(OSError) as refused:
            _packet.Batch(backend="io_uring")
        batch = _packet.Batch()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert refused.value.errno == errno.EMFILE
    assert batch.backend == "sendmmsg"
    _, nat = _twin(AES_GCM_MODE)
    assert batch.add(nat.channel, b"\x01\x02", tx.fileno())
    assert batch.flush() == 1
    assert len(recv_all(receiver, 1)[0]) == 12 + 2 + 16 + 4
    tx.close()


def test_a_forked_child_sends_without_the_parents_ring(receiver: socket.socket) -> None:
    """The ring's memory is shared with a forked child: the child's flush drops its copy and
    sends with sendmmsg; the parent's ring still works afterwards."""
    batch = uring_or_skip()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(receiver.getsockname())
    _, nat = _twin(XCHACHA_MODE)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        ok = batch.add(nat.channel, b"child", tx.fileno()) and batch.flush() == 1
        os._exit(0 if ok and batch.backend == "sendmmsg" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert batch.backend == "io_uring"
    assert batch.add(nat.channel, b"parent", tx.fileno())
    assert batch.flush() == 1
    assert sorted(len(d) for d in recv_all(receiver, 2)) == [12 + 5 + 20, 12 + 6 + 20]
    tx.close()


def _twin(mode: str) -> tuple[Packetizer, NativePacketizer]:
    key = os.urandom(32)
    return Packetizer(1, cipher_for(mode, key)), NativePacketizer(1, cipher_for(mode, key))


def test_a_flush_from_another_thread_goes_on_with_sendmmsg(receiver: socket.socket) -> None:
    """The ring belongs to the thread of the first flush (SINGLE_ISSUER): a flush from another
    thread is refused by the kernel, and its datagram still leaves, by sendmmsg from then on."""
    batch = uring_or_skip()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(receiver.getsockname())
    _, nat = _twin(AES_GCM_MODE)
    assert batch.add(nat.channel, b"first", tx.fileno()) and batch.flush() == 1
    assert batch.backend == "io_uring"
    sent: list[int] = []

    def other() -> None:
        batch.add(nat.channel, b"other", tx.fileno())
        sent.append(batch.flush())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert sent == [1] and batch.backend == "sendmmsg"
    assert (nat.channel.sent, nat.channel.send_errors) == (2, 0)
    assert len(recv_all(receiver, 2)) == 2
    tx.close()
