/*
 * The steady path of an authenticated request, in C: the same steps as
 * ``SteadyPath`` in steady.py, which is the reference (its docstring says
 * what each step means and why). Keep the two equal; the tests run every
 * case against both and compare them on random inputs.
 *
 * One call: find the one credential header, SHA-256 it, look the digest up
 * among the verified credentials, check the entry's life and the
 * credential's end, note a use when one is due, and count the request on
 * its meter with the three X-RateLimit-* headers. Anything unusual returns
 * None, and the full path in Python decides.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#ifndef Py_T_OBJECT_EX
#include "structmember.h"
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------ */

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const unsigned char *block)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = ((uint32_t)block[4 * i] << 24) | ((uint32_t)block[4 * i + 1] << 16) |
               ((uint32_t)block[4 * i + 2] << 8) | (uint32_t)block[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

static void sha256_blocks_portable(uint32_t h[8], const unsigned char *data, size_t blocks)
{
    for (; blocks > 0; blocks--, data += 64) {
        sha256_block(h, data);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

/*
 * With the CPU's SHA extensions (most x86-64 since 2017): an access token is
 * about ten blocks, where this is several times faster than the code above.
 * Chosen at import by cpuid; the tests compare both with hashlib.
 */
__attribute__((target("sha,sse4.1"))) static void
sha256_blocks_shani(uint32_t h[8], const unsigned char *data, size_t blocks)
{
    const __m128i order = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* CDAB */
    __m128i state1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* EFGH */
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);    /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);         /* CDGH */
    for (; blocks > 0; blocks--, data += 64) {
        __m128i abef = state0, cdgh = state1, w[4], message;
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) { /* four rounds each; unrolled, the ifs go */
            if (g < 4) {
                w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * g)), order);
            }
            __m128i current = w[g % 4];
            message = _mm_add_epi32(current, _mm_loadu_si128((const __m128i *)&K[4 * g]));
            state1 = _mm_sha256rnds2_epu32(state1, state0, message);
            if (g >= 3 && g <= 14) {
                __m128i *next = &w[(g + 1) % 4];
                *next = _mm_add_epi32(*next, _mm_alignr_epi8(current, w[(g + 3) % 4], 4));
                *next = _mm_sha256msg2_epu32(*next, current);
            }
            message = _mm_shuffle_epi32(message, 0x0E);
            state0 = _mm_sha256rnds2_epu32(state0, state1, message);
            if (g >= 1 && g <= 12) {
                w[(g + 3) % 4] = _mm_sha256msg1_epu32(w[(g + 3) % 4], current);
            }
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
    }
    tmp = _mm_shuffle_epi32(state0, 0x1B);       /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);    /* DCHG */
    state0 = _mm_blend_epi16(tmp, state1, 0xF0); /* DCBA */
    state1 = _mm_alignr_epi8(state1, tmp, 8);    /* ABEF */
    _mm_storeu_si128((__m128i *)&h[0], state0);
    _mm_storeu_si128((__m128i *)&h[4], state1);
}

static int cpu_has_sha(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 9)) || !(ecx & (1u << 19))) {
        return 0; /* SSSE3 and SSE4.1 */
    }
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    return (ebx >> 29) & 1;
}
#else
static int cpu_has_sha(void) { return 0; }
#define sha256_blocks_shani sha256_blocks_portable
#endif

static void (*sha256_blocks)(uint32_t h[8], const unsigned char *data,
                             size_t blocks) = sha256_blocks_portable;

static void sha256(const unsigned char *data, size_t len, unsigned char out[32])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t whole = len / 64;
    sha256_blocks(h, data, whole);
    size_t done = whole * 64;
    unsigned char tail[128];
    size_t rest = len - done;
    memcpy(tail, data + done, rest);
    tail[rest] = 0x80;
    size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
    memset(tail + rest + 1, 0, tail_len - rest - 1);
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) {
        tail[tail_len - 1 - i] = (unsigned char)(bits >> (8 * i));
    }
    sha256_blocks(h, tail, tail_len / 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

/* The digest as the cache keys it: 64 lowercase hex characters. */
static PyObject *sha256_hex(const char *data, Py_ssize_t len)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char digest[32];
    sha256((const unsigned char *)data, (size_t)len, digest);
    PyObject *hex = PyUnicode_New(64, 127);
    if (hex == NULL) {
        return NULL;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(hex);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = (Py_UCS1)digits[digest[i] >> 4];
        out[2 * i + 1] = (Py_UCS1)digits[digest[i] & 0x0f];
    }
    return hex;
}

static PyObject *py_sha256_hex(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "sha256_hex() takes bytes");
        return NULL;
    }
    return sha256_hex(PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg));
}

/* The same with the portable code, whatever the CPU: for the tests. */
static PyObject *py_portable_sha256_hex(PyObject *module, PyObject *arg)
{
    void (*chosen)(uint32_t[8], const unsigned char *, size_t) = sha256_blocks;
    sha256_blocks = sha256_blocks_portable;
    PyObject *result = py_sha256_hex(module, arg);
    sha256_blocks = chosen;
    return result;
}

/* ---- SteadyPath ------------------------------------------------------------ */

/*
 * An attribute read on every request. The objects read (VerifiedKey,
 * VerifiedToken, Principal, Meter) are slots dataclasses: once a type's
 * attribute is known to be a plain slot, it is read straight from its place
 * in the object, which costs a few instructions where a generic attribute
 * lookup costs a couple of hundred. Anything else goes through
 * PyObject_GetAttr.
 */
typedef struct {
    PyTypeObject *type; /* a strong reference, held for good */
    Py_ssize_t offset;
    unsigned int version; /* type->tp_version_tag when learnt: any change to the type forgets it */
} Slot;

typedef struct {
    const char *text;
    PyObject *name;
    Slot seen[2];
} Attribute;

static Attribute verified_ends = {.text = "ends"};
static Attribute verified_key_id = {.text = "key_id"};
static Attribute verified_next_note = {.text = "next_note"};
static Attribute verified_principal = {.text = "principal"};
static Attribute principal_type = {.text = "credential_type"};
static Attribute principal_id = {.text = "credential_id"};
static Attribute meter_principal = {.text = "principal"};
static Attribute meter_ends = {.text = "ends"};
static Attribute meter_limit = {.text = "limit"};
static Attribute meter_counts = {.text = "counts"};
static Attribute meter_limit_header = {.text = "limit_header"};
static Attribute meter_reset_header = {.text = "reset_header"};

static Attribute *attributes[] = {
    &verified_ends,      &verified_key_id, &verified_next_note, &verified_principal,
    &principal_type,     &principal_id,    &meter_principal,    &meter_ends,
    &meter_limit,        &meter_counts,    &meter_limit_header, &meter_reset_header,
};

static void learn(Attribute *attribute, PyTypeObject *type)
{
    if (type->tp_getattro != PyObject_GenericGetAttr) {
        return; /* its own __getattribute__ or __getattr__ */
    }
    PyObject *descriptor = _PyType_Lookup(type, attribute->name); /* borrowed */
    if (descriptor == NULL || !Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
        return;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
    if (member->type != Py_T_OBJECT_EX ||
        !PyType_IsSubtype(type, PyDescr_TYPE(descriptor)) || /* another class's slot */
        !PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)) {
        return;
    }
    Slot *slot = attribute->seen[0].type == NULL ? &attribute->seen[0] : &attribute->seen[1];
    PyTypeObject *old = slot->type;
    slot->type = NULL;
    slot->offset = member->offset;
    slot->version = type->tp_version_tag;
    slot->type = (PyTypeObject *)Py_NewRef(type);
    Py_XDECREF(old);
}

/* obj.<attribute>, a new reference; NULL with an exception set. */
static PyObject *get(PyObject *obj, Attribute *attribute)
{
    PyTypeObject *type = Py_TYPE(obj);
    for (int i = 0; i < 2; i++) {
        if (attribute->seen[i].type == type && type->tp_version_tag == attribute->seen[i].version &&
            PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)) {
            PyObject *value = *(PyObject **)((char *)obj + attribute->seen[i].offset);
            if (value != NULL) {
                return Py_NewRef(value);
            }
            return PyObject_GetAttr(obj, attribute->name); /* unset: raises */
        }
    }
    learn(attribute, type);
    return PyObject_GetAttr(obj, attribute->name);
}

typedef struct {
    PyObject *state_principal;
    PyObject *state_headers;
    PyObject *remaining_name;
    PyObject *system_time;      /* time.time */
    PyObject *system_monotonic; /* time.monotonic */
} Names;

static Names names;

typedef struct {
    PyObject_HEAD
    PyObject *entries;    /* dict: hex digest -> (verified or None, expires) */
    PyObject *monotonic;  /* () -> float: the entries' clock */
    PyObject *timestamp;  /* () -> float: seconds since the epoch */
    PyObject *touch;      /* (key_id, now) -> float: when the next use is due */
    PyObject *meters;     /* dict: (credential_type, credential_id) -> Meter; None: not here */
    PyObject *wall_clock; /* () -> float: the meters' clock */
    PyObject *open_meter; /* (principal, now) -> Meter */
    PyObject *over_limit; /* (meter, state) -> raises */
    Py_ssize_t hits;
    vectorcallfunc vectorcall;
} SteadyPath;

static int steady_traverse(SteadyPath *self, visitproc visit, void *arg)
{
    Py_VISIT(self->entries);
    Py_VISIT(self->monotonic);
    Py_VISIT(self->timestamp);
    Py_VISIT(self->touch);
    Py_VISIT(self->meters);
    Py_VISIT(self->wall_clock);
    Py_VISIT(self->open_meter);
    Py_VISIT(self->over_limit);
    return 0;
}

static int steady_clear(SteadyPath *self)
{
    Py_CLEAR(self->entries);
    Py_CLEAR(self->monotonic);
    Py_CLEAR(self->timestamp);
    Py_CLEAR(self->touch);
    Py_CLEAR(self->meters);
    Py_CLEAR(self->wall_clock);
    Py_CLEAR(self->open_meter);
    Py_CLEAR(self->over_limit);
    return 0;
}

static void steady_dealloc(SteadyPath *self)
{
    PyObject_GC_UnTrack(self);
    steady_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int steady_init(SteadyPath *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"entries",    "monotonic",  "timestamp",  "touch", "meters",
                               "wall_clock", "open_meter", "over_limit", NULL};
    PyObject *entries, *monotonic, *timestamp, *touch, *meters, *wall_clock, *open_meter,
        *over_limit;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O!OOOOOOO", keywords, &PyDict_Type,
                                     &entries, &monotonic, &timestamp, &touch, &meters,
                                     &wall_clock, &open_meter, &over_limit)) {
        return -1;
    }
    if (meters != Py_None && !PyDict_Check(meters)) {
        PyErr_SetString(PyExc_TypeError, "meters must be a dict or None");
        return -1;
    }
    Py_XSETREF(self->entries, Py_NewRef(entries));
    Py_XSETREF(self->monotonic, Py_NewRef(monotonic));
    Py_XSETREF(self->timestamp, Py_NewRef(timestamp));
    Py_XSETREF(self->touch, Py_NewRef(touch));
    Py_XSETREF(self->meters, Py_NewRef(meters));
    Py_XSETREF(self->wall_clock, Py_NewRef(wall_clock));
    Py_XSETREF(self->open_meter, Py_NewRef(open_meter));
    Py_XSETREF(self->over_limit, Py_NewRef(over_limit));
    self->hits = 0;
    return 0;
}

static PyObject *steady_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames);

static PyObject *steady_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    SteadyPath *self = (SteadyPath *)PyType_GenericNew(type, args, kwargs);
    if (self != NULL) {
        self->vectorcall = steady_vectorcall;
    }
    return (PyObject *)self;
}

/*
 * A clock's reading: a float from a call with no arguments; -1.0 with an
 * exception set on failure. time.time and time.monotonic themselves (the
 * service's clocks, where tests pass their own) are read directly.
 */
static double call_clock(PyObject *clock)
{
    struct timespec now;
    if (clock == names.system_time && clock_gettime(CLOCK_REALTIME, &now) == 0) {
        return (double)now.tv_sec + now.tv_nsec * 1e-9;
    }
    if (clock == names.system_monotonic && clock_gettime(CLOCK_MONOTONIC, &now) == 0) {
        return (double)now.tv_sec + now.tv_nsec * 1e-9;
    }
    PyObject *value = PyObject_CallNoArgs(clock);
    if (value == NULL) {
        return -1.0;
    }
    double result = PyFloat_AsDouble(value);
    Py_DECREF(value);
    return result;
}

static double attr_double(PyObject *obj, Attribute *attribute)
{
    PyObject *value = get(obj, attribute);
    if (value == NULL) {
        return -1.0;
    }
    double result = PyFloat_AsDouble(value);
    Py_DECREF(value);
    return result;
}

#define FAILED(x) ((x) == -1.0 && PyErr_Occurred())

/*
 * The verified credential's principal, or None (borrowed: Py_None) when this
 * path does not vouch for the request. NULL with an exception on failure.
 * Returns a new reference.
 */
static PyObject *vouch(SteadyPath *self, PyObject *raw_headers)
{
    PyObject *headers = PySequence_Fast(raw_headers, "headers must be a sequence");
    if (headers == NULL) {
        return NULL;
    }
    PyObject *api_key = NULL, *authorization = NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    PyObject **items = PySequence_Fast_ITEMS(headers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = items[i];
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
            goto none;
        }
        PyObject *name = PyTuple_GET_ITEM(item, 0);
        PyObject *value = PyTuple_GET_ITEM(item, 1);
        if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(value)) {
            goto none;
        }
        Py_ssize_t length = PyBytes_GET_SIZE(name);
        const char *text = PyBytes_AS_STRING(name);
        if (length == 9 && memcmp(text, "x-api-key", 9) == 0) {
            if (api_key != NULL) {
                goto none; /* two credentials are never told apart here */
            }
            api_key = value;
        } else if (length == 13 && memcmp(text, "authorization", 13) == 0) {
            if (authorization != NULL) {
                goto none;
            }
            authorization = value;
        }
    }
    const char *presented;
    Py_ssize_t presented_length;
    if (authorization != NULL) {
        if (api_key != NULL || PyBytes_GET_SIZE(authorization) < 7 ||
            memcmp(PyBytes_AS_STRING(authorization), "Bearer ", 7) != 0) {
            goto none;
        }
        presented = PyBytes_AS_STRING(authorization) + 7;
        presented_length = PyBytes_GET_SIZE(authorization) - 7;
    } else if (api_key != NULL) {
        presented = PyBytes_AS_STRING(api_key);
        presented_length = PyBytes_GET_SIZE(api_key);
    } else {
        goto none;
    }

    PyObject *digest = sha256_hex(presented, presented_length);
    if (digest == NULL) {
        goto error;
    }
    PyObject *entry = PyDict_GetItemWithError(self->entries, digest);
    Py_DECREF(digest);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            goto error;
        }
        goto none;
    }
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 ||
        PyTuple_GET_ITEM(entry, 0) == Py_None) {
        goto none;
    }
    /* Held: the calls below run Python code, which may drop the entry. */
    PyObject *verified = Py_NewRef(PyTuple_GET_ITEM(entry, 0));
    PyObject *expires_object = Py_NewRef(PyTuple_GET_ITEM(entry, 1));
    double expires = PyFloat_AsDouble(expires_object); /* may run Python code that drops entry */
    Py_DECREF(expires_object);
    if (FAILED(expires)) {
        goto error_verified;
    }
    double monotonic = call_clock(self->monotonic);
    if (FAILED(monotonic)) {
        goto error_verified;
    }
    if (expires <= monotonic) {
        goto none_verified;
    }
    self->hits++;
    double now = call_clock(self->timestamp);
    if (FAILED(now)) {
        goto error_verified;
    }
    double ends = attr_double(verified, &verified_ends);
    if (FAILED(ends)) {
        goto error_verified;
    }
    if (ends <= now) { /* also a key whose owner left: its end is -inf */
        goto none_verified;
    }
    PyObject *key_id = get(verified, &verified_key_id);
    if (key_id == NULL) {
        goto error_verified;
    }
    if (key_id != Py_None) {
        PyObject *note = get(verified, &verified_next_note);
        if (note == NULL || !PyList_Check(note) || PyList_GET_SIZE(note) != 1) {
            if (note != NULL) {
                PyErr_SetString(PyExc_TypeError, "next_note must be a one-item list");
                Py_DECREF(note);
            }
            Py_DECREF(key_id);
            goto error_verified;
        }
        PyObject *due_object = Py_NewRef(PyList_GET_ITEM(note, 0));
        double due = PyFloat_AsDouble(due_object);
        Py_DECREF(due_object);
        if (FAILED(due)) {
            Py_DECREF(note);
            Py_DECREF(key_id);
            goto error_verified;
        }
        if (now >= due) {
            PyObject *when = PyFloat_FromDouble(now);
            PyObject *next = when ? PyObject_CallFunctionObjArgs(self->touch, key_id, when, NULL)
                                  : NULL;
            Py_XDECREF(when);
            if (next == NULL) {
                Py_DECREF(note);
                Py_DECREF(key_id);
                goto error_verified;
            }
            if (PyList_SetItem(note, 0, next) < 0) { /* steals next; touch may have emptied it */
                Py_DECREF(note);
                Py_DECREF(key_id);
                goto error_verified;
            }
        }
        Py_DECREF(note);
    } else if (authorization == NULL) {
        Py_DECREF(key_id);
        goto none_verified; /* an access token sent as X-API-Key: the full path refuses it */
    }
    Py_DECREF(key_id);
    PyObject *principal = get(verified, &verified_principal);
    Py_DECREF(verified);
    Py_DECREF(headers);
    return principal;

none_verified:
    Py_DECREF(verified);
none:
    Py_DECREF(headers);
    return Py_NewRef(Py_None);
error_verified:
    Py_DECREF(verified);
error:
    Py_DECREF(headers);
    return NULL;
}

/* A count as X-RateLimit-Remaining's value: decimal digits, as bytes. */
static PyObject *digits(Py_ssize_t number)
{
    char text[24];
    char *end = text + sizeof(text), *start = end;
    size_t value = (size_t)number; /* never negative here */
    do {
        *--start = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    return PyBytes_FromStringAndSize(start, end - start);
}

/*
 * Count the request on the principal's meter, leaving its headers in state: 0,
 * or -1 with an exception (the 429 too). A meter with no count left leaves no
 * headers, and the guard has the limiter count the request.
 */
static int count(SteadyPath *self, PyObject *principal, PyObject *state)
{
    double now = call_clock(self->wall_clock);
    if (FAILED(now)) {
        return -1;
    }
    PyObject *credential_type = get(principal, &principal_type);
    if (credential_type == NULL) {
        return -1;
    }
    PyObject *credential_id = get(principal, &principal_id);
    if (credential_id == NULL) {
        Py_DECREF(credential_type);
        return -1;
    }
    PyObject *key = PyTuple_Pack(2, credential_type, credential_id);
    Py_DECREF(credential_type);
    Py_DECREF(credential_id);
    if (key == NULL) {
        return -1;
    }
    PyObject *meter = PyDict_GetItemWithError(self->meters, key);
    Py_DECREF(key);
    if (meter == NULL && PyErr_Occurred()) {
        return -1;
    }
    Py_XINCREF(meter);
    int fresh = meter != NULL;
    if (fresh) {
        PyObject *owner = get(meter, &meter_principal);
        if (owner == NULL) {
            goto error;
        }
        fresh = owner == principal;
        Py_DECREF(owner);
    }
    if (fresh) {
        double ends = attr_double(meter, &meter_ends);
        if (FAILED(ends)) {
            goto error;
        }
        fresh = ends > now;
    }
    if (!fresh) {
        Py_XDECREF(meter);
        PyObject *when = PyFloat_FromDouble(now);
        if (when == NULL) {
            return -1;
        }
        meter = PyObject_CallFunctionObjArgs(self->open_meter, principal, when, NULL);
        Py_DECREF(when);
        if (meter == NULL) {
            return -1;
        }
    }
    PyObject *limit_object = get(meter, &meter_limit);
    if (limit_object == NULL) {
        goto error;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(limit_object);
    Py_DECREF(limit_object);
    if (limit == -1 && PyErr_Occurred()) {
        goto error;
    }
    PyObject *counts = get(meter, &meter_counts);
    if (counts == NULL) {
        goto error;
    }
    if (!PyIter_Check(counts)) {
        PyErr_Format(PyExc_TypeError, "'%.200s' object is not an iterator", Py_TYPE(counts)->tp_name);
        Py_DECREF(counts);
        goto error;
    }
    PyObject *counted = PyIter_Next(counts);
    Py_DECREF(counts);
    if (counted == NULL) {
        if (PyErr_Occurred()) {
            goto error;
        }
        Py_DECREF(meter);
        return 0; /* no count left here (a shared block used up): the limiter counts it */
    }
    Py_ssize_t number = PyLong_AsSsize_t(counted);
    Py_DECREF(counted);
    if (number == -1 && PyErr_Occurred()) {
        goto error;
    }
    Py_ssize_t remaining;
    if (__builtin_sub_overflow(limit, number, &remaining)) {
        PyErr_SetString(PyExc_OverflowError, "a meter's remaining count overflows");
        goto error;
    }
    if (remaining < 0) {
        PyObject *result = PyObject_CallFunctionObjArgs(self->over_limit, meter, state, NULL);
        if (result != NULL) {
            Py_DECREF(result);
            PyErr_SetString(PyExc_RuntimeError, "over_limit must raise");
        }
        goto error;
    }
    PyObject *limit_header = get(meter, &meter_limit_header);
    PyObject *reset_header = limit_header ? get(meter, &meter_reset_header) : NULL;
    PyObject *value = reset_header ? digits(remaining) : NULL;
    PyObject *remaining_header = value ? PyTuple_Pack(2, names.remaining_name, value) : NULL;
    PyObject *headers = remaining_header ? PyList_New(3) : NULL;
    Py_XDECREF(value);
    if (headers == NULL) {
        Py_XDECREF(limit_header);
        Py_XDECREF(reset_header);
        Py_XDECREF(remaining_header);
        goto error;
    }
    PyList_SET_ITEM(headers, 0, limit_header); /* each steals */
    PyList_SET_ITEM(headers, 1, remaining_header);
    PyList_SET_ITEM(headers, 2, reset_header);
    int failed = PyObject_SetItem(state, names.state_headers, headers);
    Py_DECREF(headers);
    Py_DECREF(meter);
    return failed;

error:
    Py_XDECREF(meter);
    return -1;
}

static PyObject *steady_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames)
{
    SteadyPath *self = (SteadyPath *)callable;
    if (self->entries == NULL) {
        PyErr_SetString(PyExc_TypeError, "SteadyPath was not initialised");
        return NULL;
    }
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)) {
        PyErr_SetString(PyExc_TypeError, "SteadyPath takes (raw_headers, state)");
        return NULL;
    }
    PyObject *state = args[1];
    PyObject *principal = vouch(self, args[0]);
    if (principal == NULL || principal == Py_None) {
        return principal;
    }
    if (PyObject_SetItem(state, names.state_principal, principal) < 0 ||
        (self->meters != Py_None && count(self, principal, state) < 0)) {
        Py_DECREF(principal);
        return NULL;
    }
    return principal;
}

static PyObject *steady_get_hits(SteadyPath *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->hits);
}

static PyGetSetDef steady_getset[] = {
    {"hits", (getter)steady_get_hits, NULL, "Requests vouched for from the cache.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SteadyPathType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "runtools.server.auth._steady.SteadyPath",
    .tp_basicsize = sizeof(SteadyPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(SteadyPath, vectorcall),
    .tp_doc = "The steady path of an authenticated request (see steady.py).",
    .tp_new = steady_new,
    .tp_init = (initproc)steady_init,
    .tp_dealloc = (destructor)steady_dealloc,
    .tp_traverse = (traverseproc)steady_traverse,
    .tp_clear = (inquiry)steady_clear,
    .tp_call = PyVectorcall_Call,
    .tp_getset = steady_getset,
};

static PyMethodDef module_methods[] = {
    {"sha256_hex", (PyCFunction)py_sha256_hex, METH_O, "SHA-256 of bytes, as lowercase hex."},
    {"portable_sha256_hex", (PyCFunction)py_portable_sha256_hex, METH_O,
     "sha256_hex without the CPU's SHA extensions (for tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef steady_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "runtools.server.auth._steady",
    .m_doc = "The steady path of an authenticated request, compiled (see steady.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

static int intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__steady(void)
{
    for (size_t i = 0; i < sizeof(attributes) / sizeof(attributes[0]); i++) {
        if (intern(&attributes[i]->name, attributes[i]->text) < 0) {
            return NULL;
        }
    }
    if (intern(&names.state_principal, "principal") < 0 ||
        intern(&names.state_headers, "rate_limit_headers") < 0) {
        return NULL;
    }
    PyObject *time_module = PyImport_ImportModule("time");
    if (time_module == NULL) {
        return NULL;
    }
    names.system_time = PyObject_GetAttrString(time_module, "time");
    names.system_monotonic = PyObject_GetAttrString(time_module, "monotonic");
    Py_DECREF(time_module);
    if (names.system_time == NULL || names.system_monotonic == NULL) {
        return NULL;
    }
    if (cpu_has_sha()) {
        sha256_blocks = sha256_blocks_shani;
    }
    names.remaining_name = PyBytes_FromString("x-ratelimit-remaining");
    if (names.remaining_name == NULL || PyType_Ready(&SteadyPathType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&steady_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "SteadyPath", (PyObject *)&SteadyPathType) < 0 ||
        PyModule_AddStringConstant(module, "SHA256_CODE",
                                   sha256_blocks == sha256_blocks_portable ? "portable"
                                                                           : "sha-extensions") <
            0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
