/* A track reader's packet queue and counters in C, and the passthrough lane's fields
 * (docs/decisions/0022-native-reader-queue.md). Shared by _reader.c (the types), _ogg.c (the
 * demuxer pushes straight into the queue) and _packet.c (the Pump takes from it). */
#ifndef AUDIONODE_READER_H
#define AUDIONODE_READER_H

#include <Python.h>
#include <stdint.h>

/* One queued packet: its bytes are the queue's bytes [off, off + len) (absolute offsets). */
typedef struct {
    int64_t pos;     /* position of its first sample, 48 kHz samples */
    uint64_t off;
    uint32_t len;
    int32_t samples; /* samples per channel; 0 when the TOC could not be parsed */
} QEntry;

/* The state TrackReader (media/reader.py) shares with the Pump and the demuxer: the counters
 * as C fields (Python reads and writes them through member descriptors as before) and the
 * demuxed opus packets as one ring of entries over one byte buffer, instead of a deque of
 * packet objects (four Python objects made on the reader's thread and freed on the sender's
 * per packet). Every operation is one C call under the GIL; the reader's lock orders the
 * Python sequences around them as before. */
typedef struct {
    PyObject_HEAD
    long long buffered; /* _buffered: samples ready (packets, or PCM in pcm mode) */
    long long low;      /* _low: a resting reader reads again at or below this level */
    long long gen;      /* _gen: bumped by every seek; pushes of an older one are dropped */
    char resting;       /* _resting */
    char eof;           /* eof */
    char closed;        /* _closed */
    QEntry *q;          /* ring of qcap (a power of two) entries, qcount from qhead */
    Py_ssize_t qcap, qhead, qcount;
    unsigned char *bytes; /* bytes[i] holds absolute offset base + i */
    size_t bcap;
    uint64_t base, end; /* live bytes are [first entry's off, end) */
} ReaderCore;

/* The lane's state (media/lane.py's Lane subclasses it): the Pump reads and writes it without
 * an attribute lookup or an int object per packet, Python through member descriptors. */
typedef struct {
    PyObject_HEAD
    long long pos, crossed, margin, stop_at, turn_at;
    char open;
} LaneCore;

extern PyTypeObject ReaderCoreType;
extern PyTypeObject LaneCoreType;

#define LANE_FRAME 960 /* samples per channel of the one packet size the lane forwards */

/* Append a packet (buffered grows by its samples): 0, or -1 with MemoryError set. */
int rq_push(ReaderCore *r, const unsigned char *data, size_t n, int64_t pos, int samples);

/* type(data, pos, samples): a packet object (media.reader.Packet) for the Python consumers of
 * the queue and of OggOpus.read(); a new reference, or NULL with an error. */
PyObject *new_packet(PyObject *type, const unsigned char *data, size_t n, int64_t pos, int samples);

/* Outcome of rq_lane_take. */
enum { LANE_NONE = 0, LANE_TAKEN = 1, LANE_ODD = 2 };

/* TrackReader.take_for_lane's locked part: LANE_TAKEN with *e (its bytes: rq_bytes, valid until
 * the next push or clear), lane.pos advanced, *closed when the lane closed after it (the end
 * of the track within lane.margin, or lane.stop_at reached) and *wake when the reader must be
 * woken (TrackReader._refill); LANE_ODD when the next packet is not one 20 ms frame or reaches
 * lane.stop_at (nothing changed: the caller closes the lane); LANE_NONE when the lane is closed
 * or nothing is queued. */
int rq_lane_take(ReaderCore *r, LaneCore *lane, QEntry *e, int *closed, int *wake);

static inline const unsigned char *rq_bytes(ReaderCore *r, const QEntry *e) {
    return r->bytes + (e->off - r->base);
}

int reader_ready(void);

#endif
