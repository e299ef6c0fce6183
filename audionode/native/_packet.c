/* The native per-packet path (docs/decisions/0017-native-packet-path.md).
 *
 * Per voice connection a Channel holds what the Python Packetizer holds (voice/packetizer.py):
 * SSRC, the RTP sequence (u16) and timestamp (u32), the transport nonce counter N4 (u32), the
 * op 4 key of one of the two rtpsize modes, and the DAVE frame encryptor. Per tick the sender
 * adds every stream's frame to one Batch and flushes it with one call: DAVE frame encryption
 * (davey's compiled encryptor, called through the C API: no Python frame per packet), the RTP
 * header, the AEAD seal (OpenSSL EVP AES-256-GCM; libsodium XChaCha20-Poly1305-IETF) and the
 * sends (one io_uring_enter, else sendmmsg per socket; MSG_DONTWAIT), the sealing and sending
 * with the GIL released.
 *
 * Wire facts (docs/discord-voice.md §1.9, §1.10, §2.1): header 0x80 0x78 seq ts ssrc (big
 * endian); AEAD nonce = N4 (big endian) followed by 8 (AES-GCM) or 20 (XChaCha) zero bytes,
 * AAD = the 12-byte header, packet = header ‖ ciphertext ‖ 16-byte tag ‖ N4. Silence
 * (F8 FF FE) is never DAVE-encrypted. No cipher is written here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "_reader.h"
#include "_uring.h"

#if PY_VERSION_HEX < 0x030D0000 /* public from 3.13 on */
#define PyObject_GetOptionalAttr _PyObject_LookupAttr
#endif

#define MODE_NONE 0
#define MODE_AES_GCM 1
#define MODE_XCHACHA 2

#define HEADER_SIZE 12
#define TAG_SIZE 16
#define N4_SIZE 4
#define KEY_SIZE 32
/* One datagram: opus is at most 1275 bytes per 20 ms frame, DAVE adds at most 8 + 5 + 3. */
#define SLOT_SIZE 1536
#define MAX_PAYLOAD (SLOT_SIZE - HEADER_SIZE - TAG_SIZE - N4_SIZE)

static const unsigned char SILENCE[3] = {0xF8, 0xFF, 0xFE};
static PyObject *str_frame_encrypt; /* interned "frame_encrypt" */
static PyObject *str_encrypt_opus;  /* interned "encrypt_opus" */

/* --- Channel ------------------------------------------------------------------------------ */

static int use_aesni; /* libsodium's AES-256-GCM for channels keyed from now on (set at import) */

typedef struct {
    PyObject_HEAD
    uint32_t ssrc;
    uint16_t seq;
    uint32_t ts;
    uint32_t nonce;
    int mode;
    unsigned char key[KEY_SIZE];
    EVP_CIPHER_CTX *gcm; /* keyed once per op 4; only the IV changes per packet */
    crypto_aead_aes256gcm_state *aesni; /* libsodium's AES-NI GCM, keyed once per op 4, when the
                                           CPU has it: no EVP dispatch per packet (else `gcm`) */
    PyObject *encryptor; /* None or a FrameEncryptor (voice/dave.py DaveState) */
    unsigned long long sent;
    unsigned long long send_errors;
    unsigned long long dave_failures;
    int live; /* the session may send audio now (VoiceClient.audio_ready, native): a Pump serves it */
    int fd;   /* the connection's UDP socket, -1 while it has none (set by VoiceConnection) */
    unsigned long long pumped;       /* frames a Pump staged */
    unsigned long long pump_dropped; /* frames a Pump dropped because DAVE failed */
} Channel;

static PyTypeObject ChannelType;

static int channel_init(Channel *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"ssrc", "sequence", "timestamp", NULL};
    unsigned long long ssrc, seq = 0, ts = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "K|KK", names, &ssrc, &seq, &ts)) return -1;
    self->ssrc = (uint32_t)ssrc;
    self->seq = (uint16_t)seq;
    self->ts = (uint32_t)ts;
    self->nonce = 0;
    self->mode = MODE_NONE;
    self->live = 0;
    self->fd = -1;
    Py_XSETREF(self->encryptor, Py_NewRef(Py_None));
    return 0;
}

static void channel_dealloc(Channel *self) {
    if (self->gcm != NULL) EVP_CIPHER_CTX_free(self->gcm);
    if (self->aesni != NULL) {
        sodium_memzero(self->aesni, sizeof *self->aesni);
        free(self->aesni);
    }
    sodium_memzero(self->key, sizeof self->key);
    Py_XDECREF(self->encryptor);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *channel_set_key(Channel *self, PyObject *args) {
    int mode;
    Py_buffer key;
    if (!PyArg_ParseTuple(args, "iy*", &mode, &key)) return NULL;
    if (key.len != KEY_SIZE) {
        PyBuffer_Release(&key);
        return PyErr_Format(PyExc_ValueError, "key must be 32 bytes, got %zd", key.len);
    }
    if (mode != MODE_AES_GCM && mode != MODE_XCHACHA) {
        PyBuffer_Release(&key);
        return PyErr_Format(PyExc_ValueError, "mode must be 1 (AES-GCM) or 2 (XChaCha), got %d", mode);
    }
    memcpy(self->key, key.buf, KEY_SIZE);
    PyBuffer_Release(&key);
    if (mode == MODE_AES_GCM && use_aesni) {
        if (self->aesni == NULL) {
            self->aesni = aligned_alloc(16, sizeof *self->aesni);
            if (self->aesni == NULL) return PyErr_NoMemory();
        }
        crypto_aead_aes256gcm_beforenm(self->aesni, self->key);
    } else if (mode == MODE_AES_GCM) {
        if (self->gcm == NULL && (self->gcm = EVP_CIPHER_CTX_new()) == NULL) return PyErr_NoMemory();
        if (EVP_EncryptInit_ex(self->gcm, EVP_aes_256_gcm(), NULL, self->key, NULL) != 1)
            return PyErr_Format(PyExc_RuntimeError, "OpenSSL: AES-256-GCM init failed");
    }
    self->mode = mode;
    self->nonce = 0; /* §1.10: a new op 4 key restarts N4 */
    Py_RETURN_NONE;
}

/* DaveState's `frame_encrypt` as a C field (voice/dave.py's DaveState subclasses it when the
 * extension is built): davey's bound encrypt_opus while frames leave encrypted, else None.
 * Read per packet, it was an instance-dictionary lookup on an object cold since the last tick
 * (about 2 % of a worker at 300 DAVE streams); as a field it is one load. */
typedef struct {
    PyObject_HEAD
    PyObject *frame_encrypt;
} EncryptorCore;

static int enccore_traverse(EncryptorCore *self, visitproc visit, void *arg) {
    Py_VISIT(self->frame_encrypt);
    return 0;
}

static int enccore_clear(EncryptorCore *self) {
    Py_CLEAR(self->frame_encrypt);
    return 0;
}

static void enccore_dealloc(EncryptorCore *self) {
    PyObject_GC_UnTrack(self);
    enccore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef enccore_members[] = {
    {"frame_encrypt", T_OBJECT, offsetof(EncryptorCore, frame_encrypt), 0,
     "davey's encrypt_opus while frames leave encrypted, else None"},
    {NULL},
};

static PyTypeObject EncryptorCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "audionode.native._packet.EncryptorCore",
    .tp_basicsize = sizeof(EncryptorCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "DaveState's frame_encrypt as a C field (base of voice.dave.DaveState)",
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)enccore_traverse,
    .tp_clear = (inquiry)enccore_clear,
    .tp_dealloc = (destructor)enccore_dealloc,
    .tp_members = enccore_members,
};

/* The DAVE step, with the GIL: a new reference to the frame to seal, or NULL with an error.
 * DaveState keeps `frame_encrypt` = davey's bound encrypt_opus while encrypting, else None
 * (an EncryptorCore field where the extension is built, else an attribute); any other
 * encryptor is asked through its encrypt_opus method. */
static PyObject *dave_step(Channel *self, PyObject *frame) {
    PyObject *enc = self->encryptor;
    if (enc == NULL || enc == Py_None) return Py_NewRef(frame);
    Py_ssize_t n = PyBytes_GET_SIZE(frame);
    if (n == 3 && memcmp(PyBytes_AS_STRING(frame), SILENCE, 3) == 0) return Py_NewRef(frame);
    PyObject *fn = NULL;
    if (PyObject_TypeCheck(enc, &EncryptorCoreType)) {
        fn = ((EncryptorCore *)enc)->frame_encrypt;
        Py_XINCREF(fn); /* NULL (never set): asked through its method, as without the field */
    } else if (PyObject_GetOptionalAttr(enc, str_frame_encrypt, &fn) < 0) {
        return NULL;
    }
    PyObject *out;
    if (fn == NULL) {
        PyObject *args[2] = {enc, frame};
        out = PyObject_VectorcallMethod(str_encrypt_opus, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    } else if (fn == Py_None) {
        Py_DECREF(fn);
        return Py_NewRef(frame);
    } else {
        PyObject *args[2] = {NULL, frame};
        out = PyObject_Vectorcall(fn, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(fn);
    }
    if (out != NULL && !PyBytes_Check(out)) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_TypeError, "DAVE encryptor must return bytes");
        return NULL;
    }
    return out;
}

/* Header and payload into slot; advance the counters. Returns the N4 to seal with. */
static uint32_t stage(Channel *self, unsigned char *slot, const char *payload, Py_ssize_t n) {
    slot[0] = 0x80;
    slot[1] = 0x78;
    slot[2] = (unsigned char)(self->seq >> 8);
    slot[3] = (unsigned char)self->seq;
    slot[4] = (unsigned char)(self->ts >> 24);
    slot[5] = (unsigned char)(self->ts >> 16);
    slot[6] = (unsigned char)(self->ts >> 8);
    slot[7] = (unsigned char)self->ts;
    slot[8] = (unsigned char)(self->ssrc >> 24);
    slot[9] = (unsigned char)(self->ssrc >> 16);
    slot[10] = (unsigned char)(self->ssrc >> 8);
    slot[11] = (unsigned char)self->ssrc;
    memcpy(slot + HEADER_SIZE, payload, (size_t)n);
    uint32_t nonce = self->nonce;
    self->seq = (uint16_t)(self->seq + 1);
    self->ts += 960;
    self->nonce += 1;
    return nonce;
}

/* Seal slot in place (no Python, may run without the GIL); the datagram length, or -1. */
static Py_ssize_t seal(Channel *self, unsigned char *slot, Py_ssize_t n, uint32_t nonce) {
    unsigned char iv[24] = {0};
    iv[0] = (unsigned char)(nonce >> 24);
    iv[1] = (unsigned char)(nonce >> 16);
    iv[2] = (unsigned char)(nonce >> 8);
    iv[3] = (unsigned char)nonce;
    unsigned char *body = slot + HEADER_SIZE;
    if (self->mode == MODE_AES_GCM && self->aesni != NULL) {
        unsigned long long maclen = 0;
        if (crypto_aead_aes256gcm_encrypt_detached_afternm(body, body + n, &maclen, body, (unsigned long long)n,
                                                           slot, HEADER_SIZE, NULL, iv, self->aesni) != 0)
            return -1;
    } else if (self->mode == MODE_AES_GCM) {
        int len = 0;
        EVP_CIPHER_CTX *c = self->gcm;
        if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv) != 1) return -1;
        if (EVP_EncryptUpdate(c, NULL, &len, slot, HEADER_SIZE) != 1) return -1;
        if (n > 0 && EVP_EncryptUpdate(c, body, &len, body, (int)n) != 1) return -1;
        if (EVP_EncryptFinal_ex(c, body + n, &len) != 1) return -1;
        if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, body + n) != 1) return -1;
    } else if (self->mode == MODE_XCHACHA) {
        unsigned long long clen = 0;
        if (crypto_aead_xchacha20poly1305_ietf_encrypt(body, &clen, body, (unsigned long long)n, slot,
                                                       HEADER_SIZE, NULL, iv, self->key) != 0)
            return -1;
    } else {
        return -1;
    }
    memcpy(body + n + TAG_SIZE, iv, N4_SIZE);
    return HEADER_SIZE + n + TAG_SIZE + N4_SIZE;
}

/* Channel.packet(frame) -> bytes: one datagram now (the Python Packetizer.packet contract). */
static PyObject *channel_packet(Channel *self, PyObject *frame) {
    if (!PyBytes_Check(frame)) return PyErr_Format(PyExc_TypeError, "frame must be bytes");
    if (self->mode == MODE_NONE)
        return PyErr_Format(PyExc_RuntimeError, "Packetizer.packet() before set_cipher(): no op 4 key yet");
    PyObject *payload = dave_step(self, frame);
    if (payload == NULL) return NULL;
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    if (n > MAX_PAYLOAD) {
        Py_DECREF(payload);
        return PyErr_Format(PyExc_ValueError, "frame of %zd bytes is larger than a datagram", n);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, HEADER_SIZE + n + TAG_SIZE + N4_SIZE);
    if (out == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    unsigned char *slot = (unsigned char *)PyBytes_AS_STRING(out);
    uint32_t nonce = stage(self, slot, PyBytes_AS_STRING(payload), n);
    Py_DECREF(payload);
    if (seal(self, slot, n, nonce) < 0) {
        Py_DECREF(out);
        return PyErr_Format(PyExc_RuntimeError, "AEAD seal failed");
    }
    return out;
}

static PyObject *get_u(Channel *self, void *which) {
    switch ((intptr_t)which) {
    case 0: return PyLong_FromUnsignedLong(self->ssrc);
    case 1: return PyLong_FromUnsignedLong(self->seq);
    case 2: return PyLong_FromUnsignedLong(self->ts);
    case 3: return PyLong_FromUnsignedLong(self->nonce);
    case 4: return PyLong_FromLong(self->mode);
    case 5: return PyLong_FromUnsignedLongLong(self->sent);
    case 6: return PyLong_FromUnsignedLongLong(self->send_errors);
    case 8: return PyBool_FromLong(self->live);
    case 9: return PyLong_FromLong(self->fd);
    case 10: return PyLong_FromUnsignedLongLong(self->pumped);
    case 11: return PyLong_FromUnsignedLongLong(self->pump_dropped);
    default: return PyLong_FromUnsignedLongLong(self->dave_failures);
    }
}

static int set_u(Channel *self, PyObject *value, void *which) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a counter");
        return -1;
    }
    if ((intptr_t)which == 8) {
        int t = PyObject_IsTrue(value);
        if (t < 0) return -1;
        self->live = t;
        return 0;
    }
    if ((intptr_t)which == 9) {
        long fd = PyLong_AsLong(value);
        if (fd == -1 && PyErr_Occurred()) return -1;
        self->fd = fd < 0 || fd > INT32_MAX ? -1 : (int)fd;
        return 0;
    }
    unsigned long long v = PyLong_AsUnsignedLongLongMask(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    switch ((intptr_t)which) {
    case 1: self->seq = (uint16_t)v; break;
    case 2: self->ts = (uint32_t)v; break;
    default: self->nonce = (uint32_t)v; break;
    }
    return 0;
}

static PyObject *get_encryptor(Channel *self, void *unused) {
    return Py_NewRef(self->encryptor != NULL ? self->encryptor : Py_None);
}

static int set_encryptor(Channel *self, PyObject *value, void *unused) {
    Py_XSETREF(self->encryptor, Py_NewRef(value != NULL ? value : Py_None));
    return 0;
}

static PyGetSetDef channel_getset[] = {
    {"ssrc", (getter)get_u, NULL, "SSRC of this stream", (void *)0},
    {"sequence", (getter)get_u, (setter)set_u, "RTP sequence of the next packet (u16)", (void *)1},
    {"timestamp", (getter)get_u, (setter)set_u, "RTP timestamp of the next packet (u32)", (void *)2},
    {"nonce", (getter)get_u, (setter)set_u, "transport nonce counter N4 of the next packet", (void *)3},
    {"mode", (getter)get_u, NULL, "0 no key, 1 AES-256-GCM, 2 XChaCha20-Poly1305", (void *)4},
    {"sent", (getter)get_u, NULL, "datagrams a Batch sent", (void *)5},
    {"send_errors", (getter)get_u, NULL, "datagrams the kernel refused (dropped)", (void *)6},
    {"dave_failures", (getter)get_u, NULL, "frames dropped because DAVE failed", (void *)7},
    {"live", (getter)get_u, (setter)set_u, "a Pump may send audio on it (the session's audio_ready)", (void *)8},
    {"fd", (getter)get_u, (setter)set_u, "the connection's UDP socket for a Pump, -1: none", (void *)9},
    {"pumped", (getter)get_u, NULL, "frames a Pump staged", (void *)10},
    {"pump_dropped", (getter)get_u, NULL, "frames a Pump dropped because DAVE failed", (void *)11},
    {"encryptor", (getter)get_encryptor, (setter)set_encryptor, "the DAVE frame encryptor or None", NULL},
    {NULL},
};

static PyMethodDef channel_methods[] = {
    {"set_key", (PyCFunction)channel_set_key, METH_VARARGS, "set_key(mode, key): op 4; N4 restarts at 0"},
    {"packet", (PyCFunction)channel_packet, METH_O, "packet(frame) -> the sealed datagram"},
    {NULL},
};

static PyTypeObject ChannelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "audionode.native._packet.Channel",
    .tp_basicsize = sizeof(Channel),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Channel(ssrc, sequence=0, timestamp=0): one connection's RTP and AEAD state",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)channel_init,
    .tp_dealloc = (destructor)channel_dealloc,
    .tp_methods = channel_methods,
    .tp_getset = channel_getset,
};

/* --- Batch -------------------------------------------------------------------------------- */

typedef struct {
    Channel *ch; /* strong reference until the flush */
    int fd;
    Py_ssize_t n;   /* payload length after DAVE; -1 = dropped (DAVE failed) */
    Py_ssize_t len; /* datagram length after sealing; -1 = seal failed */
    uint32_t nonce;
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *entries;
    unsigned char *slots;
    Py_ssize_t count, capacity;
    struct mmsghdr *msgs;
    struct iovec *iov;
    UringTx *uring; /* the io_uring send backend, or NULL: sendmmsg (docs/decisions/0021) */
} Batch;

static void batch_clear(Batch *self) {
    for (Py_ssize_t i = 0; i < self->count; i++) Py_DECREF(self->entries[i].ch);
    self->count = 0;
}

static void batch_dealloc(Batch *self) {
    batch_clear(self);
    PyMem_RawFree(self->entries);
    PyMem_RawFree(self->slots);
    PyMem_RawFree(self->msgs);
    PyMem_RawFree(self->iov);
    uring_tx_close(self->uring);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Batch(backend="auto"): "auto" sends with io_uring where the kernel allows it, else with
 * sendmmsg; "io_uring" (OSError when unavailable) and "sendmmsg" force one (tests, benches). */
static int batch_init(Batch *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"backend", NULL};
    const char *backend = "auto";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|s", names, &backend)) return -1;
    int automatic = strcmp(backend, "auto") == 0;
    if (!automatic && strcmp(backend, "io_uring") != 0 && strcmp(backend, "sendmmsg") != 0) {
        PyErr_Format(PyExc_ValueError, "backend must be 'auto', 'io_uring' or 'sendmmsg', got '%s'", backend);
        return -1;
    }
    uring_tx_close(self->uring);
    self->uring = NULL;
    if (strcmp(backend, "sendmmsg") == 0) return 0;
    int why = 0;
    self->uring = uring_tx_open(&why);
    if (self->uring == NULL && !automatic) {
        errno = why;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static PyObject *batch_backend(Batch *self, void *unused) {
    return PyUnicode_FromString(self->uring != NULL ? "io_uring" : "sendmmsg");
}

static int batch_grow(Batch *self) {
    Py_ssize_t cap = self->capacity ? self->capacity * 2 : 64;
    Entry *e = PyMem_RawRealloc(self->entries, (size_t)cap * sizeof(Entry));
    if (e == NULL) return -1;
    self->entries = e;
    unsigned char *s = PyMem_RawRealloc(self->slots, (size_t)cap * SLOT_SIZE);
    if (s == NULL) return -1;
    self->slots = s;
    struct mmsghdr *m = PyMem_RawRealloc(self->msgs, (size_t)cap * sizeof(struct mmsghdr));
    if (m == NULL) return -1;
    self->msgs = m;
    struct iovec *v = PyMem_RawRealloc(self->iov, (size_t)cap * sizeof(struct iovec));
    if (v == NULL) return -1;
    self->iov = v;
    self->capacity = cap;
    return 0;
}

/* Stage one frame of ch for socket fd: DAVE and the header now (with the GIL), sealed and sent
 * at flush(). 1 staged; 0 dropped because DAVE failed (counted, no counter consumed, as the
 * Python path); -1 with an exception set. */
static int batch_stage(Batch *self, Channel *ch, PyObject *frame, int fd) {
    PyObject *payload = dave_step(ch, frame);
    if (payload == NULL) {
        /* A DAVE ratchet hiccup must not stop the tick: count it, drop the frame. */
        PyErr_Clear();
        ch->dave_failures++;
        return 0;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    if (n > MAX_PAYLOAD) {
        Py_DECREF(payload);
        PyErr_Format(PyExc_ValueError, "frame of %zd bytes is larger than a datagram", n);
        return -1;
    }
    if (self->count == self->capacity && batch_grow(self) < 0) {
        Py_DECREF(payload);
        PyErr_NoMemory();
        return -1;
    }
    Entry *e = &self->entries[self->count];
    unsigned char *slot = self->slots + (size_t)self->count * SLOT_SIZE;
    e->nonce = stage(ch, slot, PyBytes_AS_STRING(payload), n);
    Py_DECREF(payload);
    e->ch = (Channel *)Py_NewRef(ch);
    e->fd = fd;
    e->n = n;
    e->len = -1;
    self->count++;
    return 1;
}

/* Batch.add(channel, frame, fd) -> bool: batch_stage from Python (False: DAVE dropped it). */
static PyObject *batch_add(Batch *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyObject_TypeCheck(args[0], &ChannelType) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "add(channel: Channel, frame: bytes, fd: int)");
        return NULL;
    }
    Channel *ch = (Channel *)args[0];
    long fdl = PyLong_AsLong(args[2]);
    if (fdl == -1 && PyErr_Occurred()) return NULL;
    if (fdl < 0 || fdl > INT32_MAX) return PyErr_Format(PyExc_ValueError, "bad socket fd %ld", fdl);
    if (ch->mode == MODE_NONE) {
        PyErr_SetString(PyExc_RuntimeError, "Batch.add() before set_key(): no op 4 key yet");
        return NULL;
    }
    int r = batch_stage(self, ch, args[1], (int)fdl);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

/* sendmmsg for each run of entries [from, count) that share a socket (the kernel drops what it
 * cannot queue: MSG_DONTWAIT, counted per channel); without the GIL. The datagrams sent. */
static Py_ssize_t send_runs(Batch *self, Py_ssize_t from, Py_ssize_t count) {
    Py_ssize_t i = from, sent = 0;
    while (i < count) {
        Py_ssize_t j = i + 1;
        while (j < count && self->entries[j].fd == self->entries[i].fd) j++;
        Py_ssize_t k = i;
        while (k < j) {
            if (self->entries[k].len < 0) { /* seal failed: never send a clear payload */
                self->entries[k].ch->send_errors++;
                k++;
                continue;
            }
            Py_ssize_t m = k;
            while (m < j && self->entries[m].len >= 0) m++;
            int r = sendmmsg(self->entries[k].fd, &self->msgs[k], (unsigned int)(m - k), MSG_DONTWAIT);
            if (r <= 0) { /* the first datagram failed: drop it, go on with the rest */
                if (r < 0 && errno == EINTR) continue;
                self->entries[k].ch->send_errors++;
                k++;
                continue;
            }
            for (Py_ssize_t x = k; x < k + r; x++) self->entries[x].ch->sent++;
            sent += r;
            k += r;
        }
        i = j;
    }
    return sent;
}

/* The same with one io_uring_enter per ring-full (docs/decisions/0021): each datagram its own
 * send, counted alike. What the ring could not take goes by sendmmsg; a failed ring is dropped
 * for good (this Batch sends with sendmmsg from then on). */
static Py_ssize_t send_uring(Batch *self, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++)
        if (self->entries[i].len < 0) self->entries[i].fd = -1; /* seal failed: not sent, counted */
    const int *res;
    int broken;
    Py_ssize_t done = (Py_ssize_t)uring_tx_send(self->uring, (size_t)count, (const char *)&self->entries[0].fd,
                                                sizeof(Entry), self->msgs, &res, &broken);
    Py_ssize_t sent = 0;
    for (Py_ssize_t i = 0; i < done; i++) {
        if (res[i] >= 0) {
            self->entries[i].ch->sent++;
            sent++;
        } else {
            self->entries[i].ch->send_errors++;
        }
    }
    if (broken) {
        uring_tx_close(self->uring);
        self->uring = NULL;
    }
    return sent + send_runs(self, done, count);
}

/* Seal everything and send, the GIL released, with io_uring or sendmmsg (see Batch()). */
static PyObject *batch_flush(Batch *self, PyObject *unused) {
    Py_ssize_t count = self->count, sent = 0;
    if (count == 0) return PyLong_FromLong(0);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        Entry *e = &self->entries[i];
        /* Each channel's cipher state (libsodium's AES-NI state is 512 bytes) is cold by its
         * next packet: fetched two entries ahead, as the Pump does for its feeds. */
        if (i + 2 < count) {
            const Channel *c = self->entries[i + 2].ch;
            const unsigned char *st = c->aesni != NULL ? (const unsigned char *)c->aesni : NULL;
            if (st != NULL)
                for (size_t k = 0; k < sizeof(crypto_aead_aes256gcm_state); k += 64) __builtin_prefetch(st + k);
        }
        if (i + 4 < count) __builtin_prefetch(self->entries[i + 4].ch);
        unsigned char *slot = self->slots + (size_t)i * SLOT_SIZE;
        e->len = seal(e->ch, slot, e->n, e->nonce);
        self->iov[i].iov_base = slot;
        self->iov[i].iov_len = e->len > 0 ? (size_t)e->len : 0;
        memset(&self->msgs[i], 0, sizeof(struct mmsghdr));
        self->msgs[i].msg_hdr.msg_iov = &self->iov[i];
        self->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    sent = self->uring != NULL ? send_uring(self, count) : send_runs(self, 0, count);
    Py_END_ALLOW_THREADS
    batch_clear(self);
    return PyLong_FromSsize_t(sent);
}

static PyObject *batch_len(Batch *self, PyObject *unused) { return PyLong_FromSsize_t(self->count); }

static PyMethodDef batch_methods[] = {
    {"add", (PyCFunction)(void (*)(void))batch_add, METH_FASTCALL,
     "add(channel, frame, fd) -> bool: stage one frame (False: DAVE failed, dropped)"},
    {"flush", (PyCFunction)batch_flush, METH_NOARGS, "flush() -> datagrams sent: seal and send all"},
    {"pending", (PyCFunction)batch_len, METH_NOARGS, "pending() -> frames staged"},
    {NULL},
};

static PyGetSetDef batch_getset[] = {
    {"backend", (getter)batch_backend, NULL, "how flush() sends: 'io_uring' or 'sendmmsg'", NULL},
    {NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "audionode.native._packet.Batch",
    .tp_basicsize = sizeof(Batch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Batch(backend='auto'): one tick's datagrams of every stream, sealed and sent by flush()",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)batch_init,
    .tp_dealloc = (destructor)batch_dealloc,
    .tp_methods = batch_methods,
    .tp_getset = batch_getset,
};

/* --- Pump: the native tick over the passthrough lanes ------------------------------------ */

/* While a stream is in the steady state (speaking, playing, nothing held, its connection
 * live, its frame buffer empty and its track on the passthrough lane: media/lane.py), the
 * sender hands it to the Pump as a Feed, and Pump.run() serves every such stream in one call:
 * the lane's next packet from the reader's queue (TrackReader.take_for_lane's locked part,
 * rq_lane_take), DAVE, the header, staged in the tick's Batch. Anything else (the lane
 * closed or empty, a packet that is not one 20 ms frame, the connection not live, the
 * buffer holding made frames) hands the
 * stream back to the sender's Python path for this very tick, which does exactly what it did
 * before (docs/decisions/0020-native-tick.md, 0022-native-reader-queue.md). */

static PyObject *s_try_refill, *s_reader, *s_on_turn, *s_on_mark;

typedef struct {
    PyObject_HEAD
    PyObject *key;       /* the sender's key of the stream, handed back */
    Channel *ch;
    PyObject *frames;    /* the FrameBuffer's deque of made frames: served only while empty */
    LaneCore *lane;      /* media.lane.Lane */
    ReaderCore *reader;  /* lane.reader (media.reader.TrackReader) */
    PyObject *on_turn;   /* lane.on_turn: the lane closed, a turn at once */
    PyObject *on_mark;   /* lane.on_mark: a packet reached turn_at, a turn that may wait */
    long long never;     /* media.reader.NEVER */
    unsigned long long sent; /* frames served since take_sent() */
    double last;         /* `now` of the last tick that served it */
    int armed, listed;
    int served;          /* the last run sent its frame (also when it then failed and handed it back) */
} Feed;

static PyTypeObject FeedType;

static int feed_traverse(Feed *self, visitproc visit, void *arg) {
    Py_VISIT((PyObject *)self->lane);
    Py_VISIT(self->key);
    Py_VISIT(self->ch);
    Py_VISIT(self->frames);
    Py_VISIT((PyObject *)self->reader);
    Py_VISIT(self->on_turn);
    Py_VISIT(self->on_mark);
    return 0;
}

static int feed_clear(Feed *self) {
    Py_CLEAR(self->key);
    Py_CLEAR(self->ch);
    Py_CLEAR(self->frames);
    Py_CLEAR(self->lane);
    Py_CLEAR(self->reader);
    Py_CLEAR(self->on_turn);
    Py_CLEAR(self->on_mark);
    return 0;
}

static void feed_dealloc(Feed *self) {
    PyObject_GC_UnTrack(self);
    feed_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Feed(key, channel, frames, lane, never) */
static int feed_init(Feed *self, PyObject *args, PyObject *kw) {
    PyObject *key, *ch, *frames, *lane;
    long long never;
    if (!PyArg_ParseTuple(args, "OO!OO!L", &key, &ChannelType, &ch, &frames, &LaneCoreType, &lane, &never))
        return -1;
    PyObject *reader = PyObject_GetAttr(lane, s_reader);
    if (reader == NULL) return -1;
    if (!PyObject_TypeCheck(reader, &ReaderCoreType)) {
        Py_DECREF(reader);
        PyErr_SetString(PyExc_TypeError, "a Feed's lane.reader must be a ReaderCore (media.reader.TrackReader)");
        return -1;
    }
    PyObject *on_turn = PyObject_GetAttr(lane, s_on_turn);
    if (on_turn == NULL) {
        Py_DECREF(reader);
        return -1;
    }
    PyObject *on_mark = PyObject_GetAttr(lane, s_on_mark);
    if (on_mark == NULL) {
        Py_DECREF(reader);
        Py_DECREF(on_turn);
        return -1;
    }
    feed_clear(self);
    self->key = Py_NewRef(key);
    self->ch = (Channel *)Py_NewRef(ch);
    self->frames = Py_NewRef(frames);
    self->lane = (LaneCore *)Py_NewRef(lane);
    self->reader = (ReaderCore *)reader;
    self->on_turn = on_turn;
    self->on_mark = on_mark;
    self->never = never;
    return 0;
}

/* Take the lane's next packet: 1 with *data (a new reference), *pos and *closed set; 0 when
 * the Python path must serve (nothing changed); -1 on error (*data set when the packet was
 * taken before the error).
 *
 * Without the reader's lock (decision 0022): the take (rq_lane_take) and the copy of the
 * packet's bytes are C with no Python in between, so under the GIL no other thread runs
 * between them: not a push that could move the queue's buffer, not a seek or close (which
 * empty the queue), not a Lane.close() (which closes the lane: no take after it returns).
 * The lock orders the Python sequences around the queue, which never see the Pump halfway.
 * Waking a resting reader does need it (a condition's notify): TrackReader._try_refill takes
 * it if it is free, else the next packet's take asks again. */
static int take_packet(Feed *f, PyObject **data, long long *pos, int *closed) {
    QEntry e;
    int wake = 0;
    if (rq_lane_take(f->reader, f->lane, &e, closed, &wake) != LANE_TAKEN) return 0;
    *pos = e.pos;
    *data = PyBytes_FromStringAndSize((const char *)rq_bytes(f->reader, &e), e.len);
    if (*data == NULL) return -1;
    if (wake) {
        PyObject *r = PyObject_CallMethodNoArgs((PyObject *)f->reader, s_try_refill);
        if (r == NULL) return -1;
        Py_DECREF(r);
    }
    return 1;
}

/* Serve one feed this tick: 1 served (staged, or dropped by DAVE and counted), 0 handed back
 * untouched, -1 error (handed back; a packet already taken is still staged when possible). */
static int feed_serve(Feed *f, Batch *b, double now) {
    Channel *ch = f->ch;
    f->served = 0;
    if (!ch->live || ch->fd < 0 || ch->mode == MODE_NONE || !f->lane->open || f->reader->qcount == 0) return 0;
    Py_ssize_t made = PyObject_Length(f->frames);
    if (made != 0) return made < 0 ? -1 : 0;
    PyObject *data = NULL;
    long long pos = 0;
    int closed = 0;
    int taken = take_packet(f, &data, &pos, &closed);
    if (data == NULL) return taken; /* 0, or -1 before anything was taken */
    /* Taken: it leaves even when the bookkeeping after the pop failed (its error waits). */
    PyObject *et = NULL, *ev = NULL, *tb = NULL;
    if (taken < 0) PyErr_Fetch(&et, &ev, &tb);
    int staged = batch_stage(b, ch, data, ch->fd);
    Py_DECREF(data);
    if (taken < 0) {
        if (staged < 0) PyErr_Clear();
        PyErr_Restore(et, ev, tb);
    }
    if (staged < 0) return -1;
    if (staged) ch->pumped++;
    else ch->pump_dropped++;
    f->sent++;
    f->last = now;
    f->served = 1;
    if (taken < 0) return -1;
    int marked = 0;
    if (pos >= f->lane->turn_at) { /* the frame a position event names; one turn asked for */
        f->lane->crossed = pos;
        f->lane->turn_at = f->never;
        marked = 1;
    }
    /* A closed lane needs its turn at once (frames must be made); a mark's turn may wait
     * (media/lane.py, Lane.on_mark). One call either way, as TrackReader.take_for_lane. */
    if (closed || marked) {
        PyObject *r = PyObject_CallNoArgs(closed ? f->on_turn : f->on_mark);
        if (r == NULL) return -1;
        Py_DECREF(r);
    }
    return 1;
}

static PyObject *feed_take_sent(Feed *self, PyObject *unused) {
    unsigned long long n = self->sent;
    self->sent = 0;
    return PyLong_FromUnsignedLongLong(n);
}

static PyObject *feed_get_armed(Feed *self, void *unused) { return PyBool_FromLong(self->armed); }

static PyObject *feed_get_last(Feed *self, void *unused) { return PyFloat_FromDouble(self->last); }

static PyObject *feed_get_key(Feed *self, void *unused) { return Py_NewRef(self->key); }

static PyObject *feed_get_served(Feed *self, void *unused) { return PyBool_FromLong(self->served); }

static int feed_set_armed(Feed *self, PyObject *value, void *unused) {
    int t = value != NULL ? PyObject_IsTrue(value) : 0;
    if (t < 0) return -1;
    self->armed = t;
    return 0;
}

static PyGetSetDef feed_getset[] = {
    {"armed", (getter)feed_get_armed, (setter)feed_set_armed,
     "served by its Pump; set False to take the stream back (the Pump drops it at its next run)", NULL},
    {"last", (getter)feed_get_last, NULL, "the `now` of the last tick that served it", NULL},
    {"key", (getter)feed_get_key, NULL, "the sender's key of the stream", NULL},
    {"served", (getter)feed_get_served, NULL, "the last run sent its frame", NULL},
    {NULL},
};

static PyMethodDef feed_methods[] = {
    {"take_sent", (PyCFunction)feed_take_sent, METH_NOARGS, "take_sent() -> frames served since the last call"},
    {NULL},
};

static PyTypeObject FeedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "audionode.native._packet.Feed",
    .tp_basicsize = sizeof(Feed),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Feed(key, channel, frames, lane, never): one steady passthrough stream for a Pump",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)feed_init,
    .tp_dealloc = (destructor)feed_dealloc,
    .tp_traverse = (traverseproc)feed_traverse,
    .tp_clear = (inquiry)feed_clear,
    .tp_methods = feed_methods,
    .tp_getset = feed_getset,
};

typedef struct {
    PyObject_HEAD
    Feed **feeds;
    Py_ssize_t count, capacity;
    unsigned long long errors;
} Pump;

static void pump_drop_all(Pump *self) {
    for (Py_ssize_t i = 0; i < self->count; i++) {
        self->feeds[i]->listed = 0;
        Py_DECREF(self->feeds[i]);
    }
    self->count = 0;
}

static int pump_traverse(Pump *self, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < self->count; i++) Py_VISIT(self->feeds[i]);
    return 0;
}

static int pump_clear(Pump *self) {
    pump_drop_all(self);
    return 0;
}

static void pump_dealloc(Pump *self) {
    PyObject_GC_UnTrack(self);
    pump_drop_all(self);
    PyMem_Free(self->feeds);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Pump.arm(feed): serve it from the next run on. */
static PyObject *pump_arm(Pump *self, PyObject *arg) {
    if (!PyObject_TypeCheck(arg, &FeedType)) return PyErr_Format(PyExc_TypeError, "arm(feed: Feed)");
    Feed *f = (Feed *)arg;
    f->armed = 1;
    if (f->listed) Py_RETURN_NONE;
    if (self->count == self->capacity) {
        Py_ssize_t cap = self->capacity ? self->capacity * 2 : 64;
        Feed **grown = PyMem_Realloc(self->feeds, (size_t)cap * sizeof(Feed *));
        if (grown == NULL) return PyErr_NoMemory();
        self->feeds = grown;
        self->capacity = cap;
    }
    self->feeds[self->count++] = (Feed *)Py_NewRef(f);
    f->listed = 1;
    Py_RETURN_NONE;
}

/* Pump.run(batch, now) -> list of the feeds handed back this tick: the sender runs its Python
 * path now for those not `served` (a feed whose frame left before an error is handed back
 * served). Feeds disarmed from Python are dropped without being handed back. */
/* Prefetch what serving the next feeds will read, a step further down each object chain per
 * feed ahead: each stream's objects were last touched a tick ago and are out of the cache by
 * now (300 streams' feeds, readers, packets and DAVE states are megabytes, and the producer
 * thread and the kernel ran in between). Loaded one after the other they were most of the
 * Pump's own time (perf: the packet's bytes alone 5 % of the worker). A prefetch never
 * faults; the pointers read here are those the feeds hold (checked for NULL), read again
 * when served. */
static inline void pump_prefetch(Pump *self, Py_ssize_t i) {
    Py_ssize_t n = self->count;
    if (i + 4 < n) __builtin_prefetch(self->feeds[i + 4]);
    if (i + 3 < n) {
        Feed *g = self->feeds[i + 3];
        if (g->reader != NULL) __builtin_prefetch(g->reader);
        if (g->lane != NULL) __builtin_prefetch(g->lane);
        if (g->ch != NULL) __builtin_prefetch(g->ch);
        if (g->frames != NULL) __builtin_prefetch(g->frames);
    }
    if (i + 2 < n) {
        Feed *g = self->feeds[i + 2];
        ReaderCore *r = g->reader;
        if (r != NULL && r->qcount) __builtin_prefetch(&r->q[r->qhead]);
        if (g->ch != NULL && g->ch->encryptor != NULL) __builtin_prefetch(g->ch->encryptor);
    }
    if (i + 1 < n) {
        ReaderCore *r = self->feeds[i + 1]->reader;
        if (r != NULL && r->qcount) {
            const QEntry *e = &r->q[r->qhead];
            const unsigned char *p = rq_bytes(r, e);
            for (uint32_t k = 0; k < e->len; k += 64) __builtin_prefetch(p + k);
        }
    }
}

static PyObject *pump_run(Pump *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyObject_TypeCheck(args[0], &BatchType)) {
        PyErr_SetString(PyExc_TypeError, "run(batch: Batch, now: float)");
        return NULL;
    }
    Batch *b = (Batch *)args[0];
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    PyObject *back = PyList_New(0);
    if (back == NULL) return NULL;
    Py_ssize_t keep = 0;
    /* Index by index: a callback that arms a feed may grow (move) the array meanwhile. */
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Feed *f = self->feeds[i];
        int served = 0;
        pump_prefetch(self, i);
        if (f->armed) {
            served = feed_serve(f, b, now);
            if (served < 0) {
                /* A bug, not the network: counted and shown once; the Python path goes on. */
                self->errors++;
                if (self->errors == 1 || self->errors % 1000 == 0)
                    PyErr_WriteUnraisable((PyObject *)self);
                else
                    PyErr_Clear();
            }
            if (served != 1) {
                f->armed = 0;
                if (PyList_Append(back, (PyObject *)f) < 0) {
                    PyErr_Clear(); /* memory: the key stays unserved this tick */
                }
            }
        }
        if (f->armed) {
            self->feeds[keep++] = f;
        } else {
            f->listed = 0;
            Py_DECREF(f);
        }
    }
    self->count = keep;
    return back;
}

static PyObject *pump_len(Pump *self, PyObject *unused) { return PyLong_FromSsize_t(self->count); }

static PyObject *pump_get_errors(Pump *self, void *unused) { return PyLong_FromUnsignedLongLong(self->errors); }

static PyGetSetDef pump_getset[] = {
    {"errors", (getter)pump_get_errors, NULL, "feeds handed back because of an exception (a bug)", NULL},
    {NULL},
};

static PyMethodDef pump_methods[] = {
    {"arm", (PyCFunction)pump_arm, METH_O, "arm(feed): serve it from the next run on"},
    {"run", (PyCFunction)(void (*)(void))pump_run, METH_FASTCALL,
     "run(batch, now) -> feeds handed back: serve every armed feed into batch"},
    {"armed", (PyCFunction)pump_len, METH_NOARGS, "armed() -> feeds listed (armed or not yet dropped)"},
    {NULL},
};

static PyTypeObject PumpType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "audionode.native._packet.Pump",
    .tp_basicsize = sizeof(Pump),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Pump(): the native tick over the steady passthrough streams (docs/decisions/0020)",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)pump_dealloc,
    .tp_traverse = (traverseproc)pump_traverse,
    .tp_clear = (inquiry)pump_clear,
    .tp_methods = pump_methods,
    .tp_getset = pump_getset,
};

static int pump_ready(void) {
    struct { PyObject **slot; const char *name; } names[] = {
        {&s_try_refill, "_try_refill"}, {&s_reader, "reader"}, {&s_on_turn, "on_turn"}, {&s_on_mark, "on_mark"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL) return -1;
    if (reader_ready() < 0 || PyType_Ready(&FeedType) < 0 || PyType_Ready(&PumpType) < 0)
        return -1;
    return 0;
}

extern PyTypeObject OggOpusType; /* _ogg.c */
int ogg_ready(void);
PyObject *reader_set_packet_type(PyObject *mod, PyObject *type); /* _reader.c */

/* use_aes_gcm(name) -> the previous one: "sodium" (AES-NI; only where the CPU has it) or
 * "openssl" for channels keyed from now on. The tests run both; the node keeps the default. */
static PyObject *use_aes_gcm(PyObject *mod, PyObject *arg) {
    const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (name == NULL) return PyErr_Format(PyExc_TypeError, "use_aes_gcm(name: str)");
    PyObject *was = PyUnicode_FromString(use_aesni ? "sodium" : "openssl");
    if (strcmp(name, "openssl") == 0) {
        use_aesni = 0;
    } else if (strcmp(name, "sodium") == 0 && crypto_aead_aes256gcm_is_available()) {
        use_aesni = 1;
    } else {
        Py_XDECREF(was);
        return PyErr_Format(PyExc_ValueError, "no AES-256-GCM backend %R here", arg);
    }
    return was;
}

static PyMethodDef module_methods[] = {
    {"use_aes_gcm", use_aes_gcm, METH_O, "use_aes_gcm(name) -> previous: 'sodium' or 'openssl'"},
    {"set_packet_type", reader_set_packet_type, METH_O,
     "set_packet_type(type): the class ReaderCore makes packets of (media.reader.Packet)"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_packet", "The native per-packet path (docs/decisions/0017).", -1, module_methods,
};

PyMODINIT_FUNC PyInit__packet(void) {
    if (sodium_init() < 0) {
        PyErr_SetString(PyExc_ImportError, "libsodium failed to initialise");
        return NULL;
    }
    use_aesni = crypto_aead_aes256gcm_is_available();
    if (PyType_Ready(&ChannelType) < 0 || PyType_Ready(&BatchType) < 0 || ogg_ready() < 0 ||
        PyType_Ready(&EncryptorCoreType) < 0 ||
        pump_ready() < 0)
        return NULL;
    str_frame_encrypt = PyUnicode_InternFromString("frame_encrypt");
    str_encrypt_opus = PyUnicode_InternFromString("encrypt_opus");
    if (str_frame_encrypt == NULL || str_encrypt_opus == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Channel", (PyObject *)&ChannelType) < 0 ||
        PyModule_AddObjectRef(m, "Batch", (PyObject *)&BatchType) < 0 ||
        PyModule_AddObjectRef(m, "OggOpus", (PyObject *)&OggOpusType) < 0 ||
        PyModule_AddObjectRef(m, "Feed", (PyObject *)&FeedType) < 0 ||
        PyModule_AddObjectRef(m, "LaneCore", (PyObject *)&LaneCoreType) < 0 ||
        PyModule_AddObjectRef(m, "ReaderCore", (PyObject *)&ReaderCoreType) < 0 ||
        PyModule_AddObjectRef(m, "EncryptorCore", (PyObject *)&EncryptorCoreType) < 0 ||
        PyModule_AddObjectRef(m, "Pump", (PyObject *)&PumpType) < 0 ||
        PyModule_AddIntConstant(m, "MODE_AES_GCM", MODE_AES_GCM) < 0 ||
        PyModule_AddIntConstant(m, "MODE_XCHACHA", MODE_XCHACHA) < 0 ||
        PyModule_AddStringConstant(m, "OPENSSL_VERSION", OpenSSL_version(OPENSSL_VERSION)) < 0 ||
        PyModule_AddStringConstant(m, "SODIUM_VERSION", sodium_version_string()) < 0 ||
        PyModule_AddStringConstant(m, "AES_GCM", use_aesni ? "libsodium AES-NI" : "OpenSSL") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
