/* The native Ogg Opus packet demuxer for passthrough (docs/decisions/0019-native-ogg-demux.md).
 *
 * OggOpus(packet_type) is fed the bytes of one Ogg Opus file (feed), in chunks of any size,
 * and read(max, skip_to, end) returns up to about max audio packets as packet_type(data, pos,
 * samples) objects (media/reader.py's Packet), with the positions libavformat gives them, so a
 * track demuxed here and one demuxed by PyAV yield the same packets (tested):
 *
 * - Ogg framing (RFC 3533): pages "OggS", version 0, header type, granule (i64 LE), serial,
 *   sequence, CRC-32 (poly 0x04C11DB7, over the page with the CRC field zeroed), lacing
 *   values; a packet is the concatenation of segments up to one shorter than 255 bytes and
 *   may continue on the next page (header type bit 0).
 * - Opus mapping (RFC 7845): packet 0 is OpusHead (pre-skip: u16 LE at byte 10), packet 1
 *   OpusTags, then audio; samples per packet from the TOC (RFC 6716 §3.1, media/opus.py).
 * - Positions as libavformat's oggdec/oggparseopus compute them: the stream's last known
 *   timestamp starts at 0; at an audio packet whose timestamp is unknown or 0 on a page that
 *   is not the last (EOS), it is the page's granule minus the samples of the packets that end
 *   on that page from this one on; a known timestamp minus the pre-skip is the packet's
 *   position, and each next packet follows the previous one by its samples; after a packet
 *   that ends its page the page's granule (unless -1) becomes the last known timestamp.
 *
 * Anything else (a second logical stream, a chained stream, a bad CRC, a lost capture
 * pattern, an empty or malformed audio packet) is not handled here: state becomes ANOMALY
 * with `count` the audio packets read before it, and media/reader.py continues with PyAV
 * from the start, leaving out that many packets. No I/O here; no cipher.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>

#include "_reader.h"

#define OGG_MORE 0    /* call read again (or feed, once `need` is set) */
#define OGG_NEED 1    /* feed more bytes (or feed(b"") at the end of the input) */
#define OGG_END 2     /* the stream ended (EOS page, end of input, or `end` reached) */
#define OGG_ANOMALY 3 /* not handled here: continue with PyAV from `resume` */

#define MAX_PAGE_PACKETS 255

/* Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first, no reflection, initial value 0: RFC 3533
 * section 6), eight bytes per step ("slicing by 8"): crc_table[k][b] is the CRC of byte b followed
 * by k zero bytes, so eight independent lookups replace eight dependent ones. Every byte of every
 * page goes through it; one lookup per byte was 5 % of a worker's CPU at 300 passthrough
 * streams (docs/PERFORMANCE.md, "Reader packets in native code, prefetching"). */
static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i << 24;
        for (int j = 0; j < 8; j++) r = (r & 0x80000000u) ? (r << 1) ^ 0x04C11DB7u : r << 1;
        crc_table[0][i] = r;
    }
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++)
            crc_table[k][i] = (crc_table[k - 1][i] << 8) ^ crc_table[0][crc_table[k - 1][i] >> 24];
}

static inline uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t crc_run(uint32_t crc, const unsigned char *p, size_t n) {
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t a = crc ^ be32(p), b = be32(p + 4);
        crc = crc_table[7][a >> 24] ^ crc_table[6][(a >> 16) & 0xFF] ^ crc_table[5][(a >> 8) & 0xFF] ^
              crc_table[4][a & 0xFF] ^ crc_table[3][b >> 24] ^ crc_table[2][(b >> 16) & 0xFF] ^
              crc_table[1][(b >> 8) & 0xFF] ^ crc_table[0][b & 0xFF];
    }
    for (; n > 0; p++, n--) crc = (crc << 8) ^ crc_table[0][((crc >> 24) & 0xFF) ^ *p];
    return crc;
}

/* The page's CRC with its own CRC field (bytes 22-25) taken as zeros; n >= 27. Three runs, no
 * test per byte: it is computed over every byte of every page read. */
static uint32_t page_crc(const unsigned char *p, size_t n) {
    static const unsigned char zeros[4] = {0, 0, 0, 0};
    uint32_t crc = crc_run(0, p, 22);
    crc = crc_run(crc, zeros, 4);
    return crc_run(crc, p + 26, n - 26);
}

/* RFC 6716 §3.1 Table 2 and §3.2.5, as media/opus.py: samples per channel, or -1. */
static int opus_samples(const unsigned char *p, size_t n) {
    static const int frame[32] = {480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920,
                                  2880, 480, 960, 480, 960, 120, 240, 480, 960, 120, 240,
                                  480, 960, 120, 240, 480, 960, 120, 240, 480, 960};
    if (n < 1) return -1;
    int count;
    switch (p[0] & 3) {
    case 0: count = 1; break;
    case 1:
    case 2: count = 2; break;
    default:
        if (n < 2 || (p[1] & 0x3F) == 0) return -1;
        count = p[1] & 0x3F;
    }
    int total = frame[p[0] >> 3] * count;
    return total > 5760 ? -1 : total;
}

static inline int64_t rd64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return (int64_t)v;
}

static inline uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct {
    PyObject_HEAD
    PyObject *packet_type;
    unsigned char *buf; /* unconsumed input is buf[off, len) */
    size_t len, cap, off;
    int eof;            /* feed(b"") was called: no more input */
    int state;
    int eos;            /* the EOS page was read */
    int pages;          /* pages read so far */
    uint32_t serial;
    unsigned char *part; /* a packet continued on the next page */
    size_t plen, pcap;
    int cont;           /* the last page ended inside a packet */
    long long headers;  /* header packets seen (OpusHead, OpusTags) */
    int pre_skip;
    int64_t lastpts;
    int lastpts_set;
    int64_t cur;        /* position of the next audio packet */
    long long count;    /* audio packets read so far (returned, skipped or waiting) */
    long long samples;  /* samples of the packets the last read returned */
    const char *why;
    int ready;          /* __init__ ran */
    /* The audio packets of the last page not yet handed out (from pend_at), raw: read() makes
     * packet objects of them, read_into() copies them into a reader's queue (_reader.h). */
    unsigned char *pbytes;
    size_t pbcap, pblen;
    int pend_count, pend_at;
    int64_t pend_pos[MAX_PAGE_PACKETS];
    size_t pend_off[MAX_PAGE_PACKETS];
    uint32_t pend_len[MAX_PAGE_PACKETS];
    int pend_samples[MAX_PAGE_PACKETS];
} OggOpus;

static int ogg_init(OggOpus *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"packet_type", NULL};
    PyObject *type;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", names, &type)) return -1;
    Py_XSETREF(self->packet_type, Py_NewRef(type));
    self->len = self->off = 0;
    self->eof = self->eos = self->pages = 0;
    self->state = OGG_NEED;
    self->plen = 0;
    self->cont = 0;
    self->headers = 0;
    self->pre_skip = 0;
    self->lastpts = 0;
    self->lastpts_set = 1; /* libavformat starts a stream's last timestamp at 0 */
    self->cur = 0;
    self->count = 0;
    self->samples = 0;
    self->why = "";
    self->pblen = 0;
    self->pend_count = self->pend_at = 0;
    self->ready = 1;
    return 0;
}

static void ogg_dealloc(OggOpus *self) {
    Py_XDECREF(self->packet_type);
    PyMem_Free(self->pbytes);
    PyMem_Free(self->buf);
    PyMem_Free(self->part);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int grow(unsigned char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 32768;
    while (n < need) n *= 2;
    unsigned char *q = PyMem_Realloc(*p, n);
    if (q == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *p = q;
    *cap = n;
    return 0;
}

static PyObject *ogg_feed(OggOpus *self, PyObject *arg) {
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "OggOpus.__init__ was not called");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len == 0) {
        self->eof = 1;
    } else {
        if (self->off > 0 && self->off == self->len) self->off = self->len = 0;
        if (self->off > (1 << 20) || (self->off > 0 && self->len + (size_t)view.len > self->cap)) {
            memmove(self->buf, self->buf + self->off, self->len - self->off);
            self->len -= self->off;
            self->off = 0;
        }
        if (grow(&self->buf, &self->cap, self->len + (size_t)view.len) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
        memcpy(self->buf + self->len, view.buf, (size_t)view.len);
        self->len += (size_t)view.len;
    }
    PyBuffer_Release(&view);
    if (self->state == OGG_NEED) self->state = OGG_MORE;
    Py_RETURN_NONE;
}

static void anomaly(OggOpus *self, const char *why) {
    self->state = OGG_ANOMALY;
    self->why = why;
}

/* Emit one audio packet into the page's pending packets (or stop at `end`); -1 on an error. */
static int emit(OggOpus *self, const unsigned char *p, size_t n, int d, int64_t skip_to, int64_t end) {
    int64_t pos = self->cur;
    if (end >= 0 && pos >= end) {
        self->state = OGG_END;
        return 0;
    }
    self->cur = pos + d;
    self->count++;
    if (pos + d <= skip_to) return 0;
    int i = self->pend_count;
    if (i >= MAX_PAGE_PACKETS) { /* cannot happen: a page has at most 255 segments */
        PyErr_SetString(PyExc_RuntimeError, "more packets on a page than segments");
        return -1;
    }
    if (grow(&self->pbytes, &self->pbcap, self->pblen + n) < 0) return -1;
    memcpy(self->pbytes + self->pblen, p, n);
    self->pend_pos[i] = pos < 0 ? 0 : pos;
    self->pend_off[i] = self->pblen;
    self->pend_len[i] = (uint32_t)n;
    self->pend_samples[i] = d;
    self->pblen += n;
    self->pend_count = i + 1;
    return 0;
}

/* Read one page from the input: 1 read, 0 no whole page yet or not going on, -1 error. */
static int read_page(OggOpus *self, int64_t skip_to, int64_t end) {
    const unsigned char *pg = self->buf + self->off;
    size_t avail = self->len - self->off;
    if (self->eos) {
        if (avail > 0) anomaly(self, "data after the end of the stream (a chained stream)");
        else self->state = self->eof ? OGG_END : OGG_NEED;
        return 0;
    }
    if (avail < 27 || avail < 27u + pg[26]) {
        /* a page cut off by the end of the input ends the stream, as in libavformat */
        self->state = self->eof ? OGG_END : OGG_NEED;
        return 0;
    }
    if (memcmp(pg, "OggS", 4) != 0 || pg[4] != 0) {
        anomaly(self, "lost the Ogg capture pattern");
        return 0;
    }
    int nsegs = pg[26];
    const unsigned char *lacing = pg + 27;
    size_t body = 0;
    for (int i = 0; i < nsegs; i++) body += lacing[i];
    size_t size = 27 + (size_t)nsegs + body;
    if (avail < size) {
        self->state = self->eof ? OGG_END : OGG_NEED;
        return 0;
    }
    if (page_crc(pg, size) != rd32(pg + 22)) {
        anomaly(self, "page CRC mismatch");
        return 0;
    }
    int htype = pg[5];
    int64_t granule = rd64(pg + 6);
    uint32_t serial = rd32(pg + 14);
    if (self->pages == 0) {
        if (!(htype & 2)) {
            anomaly(self, "the first page does not begin a stream");
            return 0;
        }
        self->serial = serial;
    } else if (serial != self->serial || (htype & 2)) {
        anomaly(self, "a second logical stream");
        return 0;
    }
    if (((htype & 1) != 0) != (self->cont != 0)) {
        anomaly(self, "a continued packet without its start (or a start without its end)");
        return 0;
    }
    /* The packets that end on this page. */
    const unsigned char *ptr[MAX_PAGE_PACKETS];
    size_t plen[MAX_PAGE_PACKETS];
    int last_seg[MAX_PAGE_PACKETS];
    int count = 0;
    const unsigned char *data = lacing + nsegs;
    size_t at = 0, start = 0;
    int continued = self->cont;
    for (int i = 0; i < nsegs; i++) {
        at += lacing[i];
        if (lacing[i] == 255) continue;
        if (continued) {
            if (grow(&self->part, &self->pcap, self->plen + at - start) < 0) return -1;
            memcpy(self->part + self->plen, data + start, at - start);
            ptr[count] = self->part;
            plen[count] = self->plen + at - start;
            continued = 0;
        } else {
            ptr[count] = data + start;
            plen[count] = at - start;
        }
        last_seg[count] = i == nsegs - 1;
        count++;
        start = at;
    }
    /* the unfinished packet at the end of the page waits in `part` */
    size_t tail = body - start;
    int open_end = nsegs > 0 && lacing[nsegs - 1] == 255;
    self->off += size;
    self->pages++;
    for (int k = 0; k < count; k++) {
        const unsigned char *p = ptr[k];
        size_t n = plen[k];
        if (self->headers == 0) {
            if (n < 19 || memcmp(p, "OpusHead", 8) != 0) {
                anomaly(self, "not an Ogg Opus stream");
                return 0;
            }
            self->pre_skip = p[10] | p[11] << 8;
            self->headers++;
            continue;
        }
        if (self->headers == 1) {
            self->headers++;
            continue;
        }
        int d = opus_samples(p, n);
        if (d <= 0) {
            anomaly(self, "an empty or malformed opus packet");
            return 0;
        }
        if ((!self->lastpts_set || self->lastpts == 0) && !(htype & 4)) {
            int64_t sum = 0;
            for (int j = k; j < count; j++) {
                int dj = opus_samples(ptr[j], plen[j]);
                if (dj > 0) sum += dj;
            }
            self->lastpts = granule - sum;
            self->lastpts_set = 1;
        }
        if (self->lastpts_set) {
            self->cur = self->lastpts - self->pre_skip;
            self->lastpts_set = 0;
        }
        if (emit(self, p, n, d, skip_to, end) < 0) return -1;
        if (self->state == OGG_END) return 1;
        if (last_seg[k] && granule != -1) {
            self->lastpts = granule;
            self->lastpts_set = 1;
        }
    }
    if (count > 0) self->plen = 0;
    if (open_end) {
        if (grow(&self->part, &self->pcap, self->plen + tail) < 0) return -1;
        memcpy(self->part + self->plen, data + start, tail);
        self->plen += tail;
    }
    self->cont = open_end;
    if (htype & 4) self->eos = 1;
    return 1;
}

/* The next page's packets once the pending ones are out: 1 a page was read, 0 none (state says
 * why, or the per-call page budget is spent), -1 error. A page's packets are made at once and
 * handed out up to `max` per call (the caller's read-ahead limit); a skip (skip_to) over many
 * pages returns to the caller between pages, so one call never holds the shared thread long. */
static int next_page(OggOpus *self, int *pages, int64_t skip_to, int64_t end) {
    if (self->state != OGG_MORE || *pages >= 16) return 0;
    self->pend_count = self->pend_at = 0;
    self->pblen = 0;
    int r = read_page(self, skip_to, end);
    if (r < 0) return -1;
    *pages += r;
    return 1;
}

static int read_args(OggOpus *self, PyObject *const *args, Py_ssize_t *max, long long *skip_to, long long *end) {
    if (!self->ready || self->packet_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "OggOpus.__init__ was not called");
        return -1;
    }
    *max = PyLong_AsSsize_t(args[0]);
    *skip_to = PyLong_AsLongLong(args[1]);
    *end = PyLong_AsLongLong(args[2]);
    return PyErr_Occurred() ? -1 : 0;
}

/* read(max, skip_to, end) -> [packet_type(data, pos, samples), ...] */
static PyObject *ogg_read(OggOpus *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t max;
    long long skip_to, end;
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "read(max, skip_to, end) takes 3 arguments");
    if (read_args(self, args, &max, &skip_to, &end) < 0) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    self->samples = 0;
    int pages = 0;
    while (PyList_GET_SIZE(out) < max) {
        if (self->pend_at < self->pend_count) {
            int i = self->pend_at;
            PyObject *packet = new_packet(self->packet_type, self->pbytes + self->pend_off[i],
                                          self->pend_len[i], self->pend_pos[i], self->pend_samples[i]);
            if (packet == NULL || PyList_Append(out, packet) < 0) {
                Py_XDECREF(packet);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(packet);
            self->samples += self->pend_samples[i];
            self->pend_at++;
            continue;
        }
        int r = next_page(self, &pages, skip_to, end);
        if (r < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (r == 0) break;
    }
    return out;
}

/* read_into(reader, max, skip_to, end, gen) -> (count, was_empty): read() straight into a
 * ReaderCore's queue, no packet object made. The packets are dropped (count 0) when the
 * reader moved on meanwhile (its _gen is not gen: a seek) or was closed; the check and the
 * pushes are one call under the GIL, so no seek or close falls between them. */
static PyObject *ogg_read_into(OggOpus *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t max;
    long long skip_to, end, gen;
    if (nargs != 5 || !PyObject_TypeCheck(args[0], &ReaderCoreType))
        return PyErr_Format(PyExc_TypeError, "read_into(reader: ReaderCore, max, skip_to, end, gen)");
    if (read_args(self, args + 1, &max, &skip_to, &end) < 0) return NULL;
    if ((gen = PyLong_AsLongLong(args[4])) == -1 && PyErr_Occurred()) return NULL;
    ReaderCore *rc = (ReaderCore *)args[0];
    int keep = rc->gen == gen && !rc->closed;
    int was_empty = rc->qcount == 0;
    Py_ssize_t n = 0;
    int pages = 0;
    self->samples = 0;
    while (n < max) {
        if (self->pend_at < self->pend_count) {
            int i = self->pend_at++;
            if (keep && rq_push(rc, self->pbytes + self->pend_off[i], self->pend_len[i], self->pend_pos[i],
                                self->pend_samples[i]) < 0)
                return NULL;
            self->samples += self->pend_samples[i];
            n++;
            continue;
        }
        int r = next_page(self, &pages, skip_to, end);
        if (r < 0) return NULL;
        if (r == 0) break;
    }
    return Py_BuildValue("(nO)", keep ? n : 0, was_empty ? Py_True : Py_False);
}

static PyObject *ogg_get_state(OggOpus *self, void *c) {
    /* packets still waiting from the last page come before any news */
    if (self->pend_at < self->pend_count) return PyLong_FromLong(OGG_MORE);
    return PyLong_FromLong(self->state);
}

static PyMemberDef ogg_members[] = {
    {"resume", T_LONGLONG, offsetof(OggOpus, cur), READONLY,
     "after an anomaly: position (48 kHz samples) of the next audio packet"},
    {"count", T_LONGLONG, offsetof(OggOpus, count), READONLY,
     "audio packets read before the next one (after an anomaly: those PyAV skips)"},
    {"samples", T_LONGLONG, offsetof(OggOpus, samples), READONLY,
     "samples of the packets the last read returned"},
    {"pre_skip", T_INT, offsetof(OggOpus, pre_skip), READONLY, "OpusHead pre-skip"},
    {NULL},
};

static PyObject *ogg_get_why(OggOpus *self, void *c) { return PyUnicode_FromString(self->why); }

static PyGetSetDef ogg_getset[] = {
    {"why", (getter)ogg_get_why, NULL, "why the stream is not handled here", NULL},
    {"state", (getter)ogg_get_state, NULL,
     "0 more to read, 1 feed more input, 2 ended, 3 not handled here (see why, resume)", NULL},
    {NULL},
};

static PyMethodDef ogg_methods[] = {
    {"feed", (PyCFunction)ogg_feed, METH_O,
     "feed(data): more of the file's bytes; feed(b'') at the end of the input"},
    {"read", (PyCFunction)(void (*)(void))ogg_read, METH_FASTCALL,
     "read(max, skip_to, end) -> list of packet_type(data, pos, samples): up to about max "
     "audio packets, those ending at or before skip_to left out, none from end on (end < 0: "
     "no end)"},
    {"read_into", (PyCFunction)(void (*)(void))ogg_read_into, METH_FASTCALL,
     "read_into(reader, max, skip_to, end, gen) -> (count, was_empty): read() into a "
     "ReaderCore's queue; nothing is queued when reader._gen != gen or reader._closed"},
    {NULL},
};

PyTypeObject OggOpusType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "audionode.native._packet.OggOpus",
    .tp_basicsize = sizeof(OggOpus),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "OggOpus(packet_type): an Ogg Opus packet demuxer fed bytes (decision 0019)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ogg_init,
    .tp_dealloc = (destructor)ogg_dealloc,
    .tp_methods = ogg_methods,
    .tp_members = ogg_members,
    .tp_getset = ogg_getset,
};

int ogg_ready(void) {
    crc_init();
    return PyType_Ready(&OggOpusType);
}
