/* ReaderCore and LaneCore: the track reader's packet queue and counters, and the passthrough
 * lane's fields, in C (docs/decisions/0022-native-reader-queue.md; the layout is in _reader.h).
 *
 * media/reader.py's TrackReader subclasses ReaderCore when the extension is built (a pure-Python
 * class with the same methods stands in otherwise), media/lane.py's Lane subclasses LaneCore.
 * The demuxer (_ogg.c) pushes packets into the queue and the Pump (_packet.c) takes them out
 * without a Python object per packet; Python sees the same fields and asks for packets
 * through the _q_* methods, which make the packet objects only for the Python consumers. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <string.h>

#include "_reader.h"

static PyObject *packet_type; /* media.reader.Packet, registered by set_packet_type */

/* --- the queue ----------------------------------------------------------------------------- */

static uint64_t rq_first(const ReaderCore *r) { return r->qcount ? r->q[r->qhead].off : r->end; }

static int rq_grow_entries(ReaderCore *r) {
    Py_ssize_t cap = r->qcap ? r->qcap * 2 : 256;
    QEntry *q = PyMem_Malloc((size_t)cap * sizeof(QEntry));
    if (q == NULL) return -1;
    for (Py_ssize_t i = 0; i < r->qcount; i++) q[i] = r->q[(r->qhead + i) & (r->qcap - 1)];
    PyMem_Free(r->q);
    r->q = q;
    r->qcap = cap;
    r->qhead = 0;
    return 0;
}

/* Room for n more bytes at the end: the live bytes move to the front, or to a larger buffer
 * once they would fill three quarters of it. A quarter of the buffer at least lies between
 * two moves (a second of 128 kbit/s audio with the default 3 s read-ahead), and the buffer
 * stays near the read-ahead's own size (the packets as Python objects took 1.5 times that). */
static int rq_reserve(ReaderCore *r, size_t n) {
    if ((size_t)(r->end - r->base) + n <= r->bcap) return 0;
    uint64_t first = rq_first(r);
    size_t live = (size_t)(r->end - first);
    if (live + n > r->bcap / 4 * 3) {
        size_t cap = r->bcap ? r->bcap : 16384;
        while (cap / 4 * 3 < live + n) cap *= 2;
        unsigned char *b = PyMem_Malloc(cap);
        if (b == NULL) return -1;
        if (live) memcpy(b, r->bytes + (first - r->base), live);
        PyMem_Free(r->bytes);
        r->bytes = b;
        r->bcap = cap;
    } else if (live) {
        memmove(r->bytes, r->bytes + (first - r->base), live);
    }
    r->base = first;
    return 0;
}

int rq_push(ReaderCore *r, const unsigned char *data, size_t n, int64_t pos, int samples) {
    if (n > UINT32_MAX || (r->qcount == r->qcap && rq_grow_entries(r) < 0) || rq_reserve(r, n) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    QEntry *e = &r->q[(r->qhead + r->qcount) & (r->qcap - 1)];
    e->pos = pos;
    e->off = r->end;
    e->len = (uint32_t)n;
    e->samples = samples;
    if (n) memcpy(r->bytes + (r->end - r->base), data, n);
    r->end += n;
    r->qcount++;
    r->buffered += samples;
    return 0;
}

static void rq_pop(ReaderCore *r) {
    r->buffered -= r->q[r->qhead].samples;
    r->qhead = (r->qhead + 1) & (r->qcap - 1);
    r->qcount--;
}

int rq_lane_take(ReaderCore *r, LaneCore *lane, QEntry *e, int *closed, int *wake) {
    *closed = *wake = 0;
    if (!lane->open || r->qcount == 0) return LANE_NONE;
    const QEntry *h = &r->q[r->qhead];
    if (h->samples != LANE_FRAME || h->pos >= lane->stop_at) return LANE_ODD;
    *e = *h;
    rq_pop(r);
    lane->pos = e->pos + LANE_FRAME;
    *wake = r->resting && r->buffered <= r->low;
    if ((r->eof && r->buffered <= lane->margin) || e->pos + LANE_FRAME >= lane->stop_at) {
        lane->open = 0;
        *closed = 1;
    }
    return LANE_TAKEN;
}

/* --- ReaderCore from Python ---------------------------------------------------------------- */

PyObject *new_packet(PyObject *type, const unsigned char *data, size_t n, int64_t pos, int samples) {
    PyObject *argv[3] = {
        PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)n),
        PyLong_FromLongLong(pos),
        PyLong_FromLong(samples),
    };
    PyObject *p = NULL;
    if (argv[0] != NULL && argv[1] != NULL && argv[2] != NULL) p = PyObject_Vectorcall(type, argv, 3, NULL);
    for (int i = 0; i < 3; i++) Py_XDECREF(argv[i]);
    return p;
}

static PyObject *make_packet(ReaderCore *r, const QEntry *e) {
    if (packet_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_packet_type() was not called");
        return NULL;
    }
    return new_packet(packet_type, rq_bytes(r, e), e->len, e->pos, e->samples);
}

/* _q_push(data, pos, samples) */
static PyObject *rc_push(ReaderCore *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "_q_push(data, pos, samples) takes 3 arguments");
    long long pos = PyLong_AsLongLong(args[1]);
    long samples = PyLong_AsLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    int r = rq_push(self, view.buf, (size_t)view.len, pos, (int)samples);
    PyBuffer_Release(&view);
    if (r < 0) return NULL;
    Py_RETURN_NONE;
}

/* _q_take(samples=-1) -> Packet | None: the first packet (only one of exactly `samples`
 * samples when samples >= 0; otherwise it stays first). */
static PyObject *rc_take(ReaderCore *self, PyObject *const *args, Py_ssize_t nargs) {
    long samples = -1;
    if (nargs > 1) return PyErr_Format(PyExc_TypeError, "_q_take(samples=-1)");
    if (nargs == 1 && (samples = PyLong_AsLong(args[0])) == -1 && PyErr_Occurred()) return NULL;
    if (self->qcount == 0) Py_RETURN_NONE;
    const QEntry *h = &self->q[self->qhead];
    if (samples >= 0 && h->samples != samples) Py_RETURN_NONE;
    PyObject *p = make_packet(self, h);
    if (p != NULL) rq_pop(self);
    return p;
}

static PyObject *rc_peek(ReaderCore *self, PyObject *unused) {
    if (self->qcount == 0) Py_RETURN_NONE;
    return make_packet(self, &self->q[self->qhead]);
}

static PyObject *rc_clear(ReaderCore *self, PyObject *unused) {
    while (self->qcount) rq_pop(self);
    self->base = self->end;
    Py_RETURN_NONE;
}

/* _lane_take(lane) -> None | False | (data, pos): take_for_lane's locked part (the caller holds
 * the reader's lock). None: nothing taken (the lane closed, or nothing queued); False: the
 * next packet is not one 20 ms frame or reaches lane.stop_at, and the lane is now closed;
 * else the packet's bytes and position (the lane may have closed after it). Wakes a resting
 * reader (self._refill()) when the buffer fell to its low mark. */
static PyObject *rc_lane_take(ReaderCore *self, PyObject *arg) {
    if (!PyObject_TypeCheck(arg, &LaneCoreType)) return PyErr_Format(PyExc_TypeError, "_lane_take(lane: Lane)");
    LaneCore *lane = (LaneCore *)arg;
    QEntry e;
    int closed, wake;
    int got = rq_lane_take(self, lane, &e, &closed, &wake);
    if (got == LANE_NONE) Py_RETURN_NONE;
    if (got == LANE_ODD) {
        lane->open = 0;
        Py_RETURN_FALSE;
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)rq_bytes(self, &e), e.len);
    PyObject *out = data != NULL ? Py_BuildValue("(NL)", data, (long long)e.pos) : NULL;
    if (out != NULL && wake) {
        PyObject *r = PyObject_CallMethod((PyObject *)self, "_refill", NULL);
        if (r == NULL) Py_CLEAR(out);
        Py_XDECREF(r);
    }
    return out;
}

static void rc_dealloc(ReaderCore *self) {
    PyMem_Free(self->q);
    PyMem_Free(self->bytes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef rc_members[] = {
    {"_buffered", T_LONGLONG, offsetof(ReaderCore, buffered), 0, "samples ready to be taken"},
    {"_low", T_LONGLONG, offsetof(ReaderCore, low), 0, "a resting reader reads again at or below this"},
    {"_gen", T_LONGLONG, offsetof(ReaderCore, gen), 0, "seek generation"},
    {"_resting", T_BOOL, offsetof(ReaderCore, resting), 0, "the read-ahead window was full"},
    {"eof", T_BOOL, offsetof(ReaderCore, eof), 0, "the end of the stream was read"},
    {"_closed", T_BOOL, offsetof(ReaderCore, closed), 0, "closed for good"},
    {"_q_count", T_PYSSIZET, offsetof(ReaderCore, qcount), READONLY, "packets queued"},
    {NULL},
};

static PyMethodDef rc_methods[] = {
    {"_q_push", (PyCFunction)(void (*)(void))rc_push, METH_FASTCALL, "_q_push(data, pos, samples): queue a packet"},
    {"_q_take", (PyCFunction)(void (*)(void))rc_take, METH_FASTCALL, "_q_take(samples=-1) -> Packet | None"},
    {"_q_peek", (PyCFunction)rc_peek, METH_NOARGS, "_q_peek() -> Packet | None"},
    {"_q_clear", (PyCFunction)rc_clear, METH_NOARGS, "_q_clear(): drop every queued packet"},
    {"_lane_take", (PyCFunction)rc_lane_take, METH_O, "_lane_take(lane) -> None | False | (data, pos)"},
    {NULL},
};

PyTypeObject ReaderCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "audionode.native._packet.ReaderCore",
    .tp_basicsize = sizeof(ReaderCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A track reader's packet queue and counters in C (base of media.reader.TrackReader)",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)rc_dealloc,
    .tp_members = rc_members,
    .tp_methods = rc_methods,
};

/* --- LaneCore ------------------------------------------------------------------------------- */

static PyMemberDef lanecore_members[] = {
    {"pos", T_LONGLONG, offsetof(LaneCore, pos), 0, "position after the last packet taken"},
    {"crossed", T_LONGLONG, offsetof(LaneCore, crossed), 0, "position of the packet that reached turn_at, or -1"},
    {"margin", T_LONGLONG, offsetof(LaneCore, margin), 0, "samples before a stop at which the lane closes"},
    {"stop_at", T_LONGLONG, offsetof(LaneCore, stop_at), 0, "no packet from this position on"},
    {"turn_at", T_LONGLONG, offsetof(LaneCore, turn_at), 0, "a packet from here on asks for a turn"},
    {"open", T_BOOL, offsetof(LaneCore, open), 0, "packets may leave by the lane"},
    {NULL},
};

PyTypeObject LaneCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "audionode.native._packet.LaneCore",
    .tp_basicsize = sizeof(LaneCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The passthrough lane's fields in C (base of media.lane.Lane)",
    .tp_new = PyType_GenericNew,
    .tp_members = lanecore_members,
};

/* set_packet_type(type): the class _q_take and _q_peek make packets of (media.reader.Packet). */
PyObject *reader_set_packet_type(PyObject *mod, PyObject *type) {
    if (!PyCallable_Check(type)) return PyErr_Format(PyExc_TypeError, "set_packet_type(type) needs a class");
    Py_XSETREF(packet_type, Py_NewRef(type));
    Py_RETURN_NONE;
}

int reader_ready(void) {
    return PyType_Ready(&ReaderCoreType) < 0 || PyType_Ready(&LaneCoreType) < 0 ? -1 : 0;
}
