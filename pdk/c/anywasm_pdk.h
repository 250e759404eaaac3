/*
 * anywasm plugin development kit for C (plugin ABI version 1, see docs/ABI.md).
 *
 * A single header for freestanding wasm32 C (no libc needed):
 *
 *   #include "anywasm_pdk.h"
 *   ANYWASM_PLUGIN("{\"abi\":1,\"name\":\"hello\",\"version\":\"0.1.0\",\"formats\":[\"msgpack\",\"json\"]}");
 *
 *   ANYWASM_FUNCTION(greet) {          // int ptr, int len -> long long
 *       apdk_reader r = apdk_input(ptr, len);
 *       apdk_str name = apdk_get_str(&r, "name");
 *       apdk_writer *w = apdk_output();
 *       apdk_map(w, 1);
 *       apdk_key(w, "greeting"); apdk_strn(w, name.ptr, name.len);
 *       return apdk_finish(w);
 *   }
 *
 * Inputs and outputs are flat maps of strings and unsigned integers, in
 * MessagePack or JSON as the host chooses (anywasm_set_format).
 *
 * Build: clang-14 --target=wasm32-unknown-unknown -O2 -mbulk-memory -nostdlib \
 *          -Wl,--no-entry -Wl,--export-dynamic -o p.wasm p.c
 * (-mbulk-memory lets the compiler copy with memory.copy instead of a libc memcpy.)
 */
#ifndef ANYWASM_PDK_H
#define ANYWASM_PDK_H

typedef unsigned int apdk_u32;
typedef unsigned long long apdk_u64;

#define APDK_IMPORT(module, name) __attribute__((import_module(module), import_name(name)))
#define APDK_EXPORT(name) __attribute__((export_name(name), visibility("default")))

/* ---- host imports (module "anywasm") ---------------------------------- */
APDK_IMPORT("anywasm", "error") void anywasm_error(const char *ptr, int len);
APDK_IMPORT("anywasm", "log") void anywasm_log(int level, const char *ptr, int len);
APDK_IMPORT("anywasm", "config_get") long long anywasm_config_get(const char *key, int key_len);
APDK_IMPORT("anywasm", "take_result") void anywasm_take_result(void *ptr);
APDK_IMPORT("anywasm", "calc") int anywasm_calc(int a, int b, int op);
APDK_IMPORT("anywasm", "echo") long long anywasm_echo(const void *ptr, int len);

/* ---- plugin declaration ------------------------------------------------ */
/* Emits the `anywasm.plugin` custom section; `json` is a string literal. */
#define ANYWASM_PLUGIN(json)                                                   \
    __asm__(".section .custom_section.anywasm.plugin,\"\",@\n"                 \
            ".ascii " #json "\n.text\n")

#define ANYWASM_FUNCTION(name)                                                  \
    APDK_EXPORT(#name) long long name(int ptr, int len)

/* ---- memory -------------------------------------------------------------- */
extern unsigned char __heap_base;
static unsigned char *apdk_heap_top = 0;
static apdk_u32 apdk_heap_end = 0;

static apdk_u32 apdk_strlen(const char *s) { apdk_u32 n = 0; while (s[n]) n++; return n; }
static int apdk_memeq(const char *a, const char *b, apdk_u32 n) {
    for (apdk_u32 i = 0; i < n; i++) if (a[i] != b[i]) return 0;
    return 1;
}

/* A bump allocator over the heap, reset before each call's input. */
static void *apdk_alloc(apdk_u32 n) {
    if (!apdk_heap_top) apdk_heap_top = &__heap_base;
    apdk_u32 start = ((apdk_u32)apdk_heap_top + 7u) & ~7u;
    apdk_u32 end = start + n;
    if (end < start) return 0;
    apdk_u32 have = (apdk_u32)__builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        apdk_u32 pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (apdk_u32)-1) return 0;
    }
    apdk_heap_top = (unsigned char *)end;
    if (end > apdk_heap_end) apdk_heap_end = end;
    return (void *)start;
}

/* The host asks for the input buffer: everything from the previous call is
 * released first. */
APDK_EXPORT("anywasm_alloc") int anywasm_alloc(int len) {
    apdk_heap_top = &__heap_base;
    void *p = apdk_alloc((apdk_u32)len > 0 ? (apdk_u32)len : 1);
    return (int)(apdk_u32)p;
}

static int apdk_format = 1; /* 1 MessagePack, 2 JSON, 0 raw */
APDK_EXPORT("anywasm_set_format") void anywasm_set_format(int format) { apdk_format = format; }

/* ---- errors and results ---------------------------------------------------- */
static long long apdk_fail(const char *msg) {
    anywasm_error(msg, (int)apdk_strlen(msg));
    return 0;
}

static long long apdk_pack(const void *ptr, apdk_u32 len) {
    return (long long)(((apdk_u64)(apdk_u32)ptr << 32) | (apdk_u64)len);
}

typedef struct { const char *ptr; apdk_u32 len; } apdk_str;

/* Receives the pending result of a host call into fresh memory; len 0 and
 * ptr 0 if the call failed (status != 0). */
static apdk_str apdk_take(long long pending, int *status) {
    apdk_str s = {0, 0};
    apdk_u32 len = (apdk_u32)pending;
    *status = (int)((apdk_u64)pending >> 32);
    void *p = apdk_alloc(len ? len : 1);
    if (!p) { *status = 1; return s; }
    anywasm_take_result(p);
    s.ptr = (const char *)p;
    s.len = len;
    return s;
}

static apdk_str apdk_config(const char *key) {
    int status;
    apdk_str v = apdk_take(anywasm_config_get(key, (int)apdk_strlen(key)), &status);
    if (status != 0) { v.ptr = 0; v.len = 0; }
    return v;
}

/* ---- reading a flat map ------------------------------------------------------ */
typedef struct { const unsigned char *p; apdk_u32 len; int ok; } apdk_reader;

static apdk_reader apdk_input(int ptr, int len) {
    apdk_reader r = {(const unsigned char *)ptr, (apdk_u32)len, 1};
    return r;
}

/* MessagePack: reads one string header; returns length, or -1. */
static int apdk_mp_str(const unsigned char *p, apdk_u32 n, apdk_u32 *i, apdk_str *out) {
    if (*i >= n) return -1;
    unsigned char b = p[*i];
    apdk_u32 len;
    if ((b & 0xe0) == 0xa0) { len = b & 0x1f; *i += 1; }
    else if (b == 0xd9 && *i + 1 < n) { len = p[*i + 1]; *i += 2; }
    else if (b == 0xda && *i + 2 < n) { len = ((apdk_u32)p[*i + 1] << 8) | p[*i + 2]; *i += 3; }
    else return -1;
    if (*i + len > n) return -1;
    out->ptr = (const char *)p + *i;
    out->len = len;
    *i += len;
    return (int)len;
}

/* MessagePack: reads one unsigned integer. */
static int apdk_mp_uint(const unsigned char *p, apdk_u32 n, apdk_u32 *i, apdk_u64 *out) {
    if (*i >= n) return -1;
    unsigned char b = p[*i];
    apdk_u32 size = 0;
    if (b < 0x80) { *out = b; *i += 1; return 0; }
    if (b == 0xcc) size = 1; else if (b == 0xcd) size = 2; else if (b == 0xce) size = 4; else if (b == 0xcf) size = 8;
    else return -1;
    if (*i + 1 + size > n) return -1;
    apdk_u64 v = 0;
    for (apdk_u32 k = 0; k < size; k++) v = (v << 8) | p[*i + 1 + k];
    *out = v;
    *i += 1 + size;
    return 0;
}

/* Finds `key` in a map; leaves *i at its value. Returns 1 if found. */
static int apdk_mp_find(const apdk_reader *r, const char *key, apdk_u32 *i) {
    const unsigned char *p = r->p;
    apdk_u32 n = r->len, count;
    *i = 0;
    if (n == 0) return 0;
    if ((p[0] & 0xf0) == 0x80) { count = p[0] & 0x0f; *i = 1; }
    else if (p[0] == 0xde && n >= 3) { count = ((apdk_u32)p[1] << 8) | p[2]; *i = 3; }
    else return 0;
    apdk_u32 klen = apdk_strlen(key);
    for (apdk_u32 k = 0; k < count; k++) {
        apdk_str name;
        if (apdk_mp_str(p, n, i, &name) < 0) return 0;
        if (name.len == klen && apdk_memeq(name.ptr, key, klen)) return 1;
        /* skip a string or an unsigned integer value */
        apdk_str s; apdk_u64 u;
        apdk_u32 save = *i;
        if (apdk_mp_str(p, n, i, &s) < 0) { *i = save; if (apdk_mp_uint(p, n, i, &u) < 0) return 0; }
    }
    return 0;
}

/* JSON: finds "key": in a flat object; leaves *i after the colon. */
static int apdk_json_find(const apdk_reader *r, const char *key, apdk_u32 *i) {
    const char *p = (const char *)r->p;
    apdk_u32 n = r->len, klen = apdk_strlen(key);
    int depth = 0, in_str = 0;
    for (apdk_u32 k = 0; k < n; k++) {
        char c = p[k];
        if (in_str) { if (c == '\\') k++; else if (c == '"') in_str = 0; continue; }
        if (c == '{') depth++;
        else if (c == '}') depth--;
        else if (c == '"') {
            if (depth == 1 && k + 1 + klen + 1 <= n && apdk_memeq(p + k + 1, key, klen) && p[k + 1 + klen] == '"') {
                apdk_u32 j = k + 2 + klen;
                while (j < n && (p[j] == ' ' || p[j] == ':')) j++;
                *i = j;
                return 1;
            }
            in_str = 1;
        }
    }
    return 0;
}

/* The string field `key`; ok=0 in the reader if missing. Escapes in JSON
 * strings are not decoded (the PDK is for plain strings). */
static apdk_str apdk_get_str(apdk_reader *r, const char *key) {
    apdk_str s = {0, 0};
    apdk_u32 i;
    if (apdk_format == 2) {
        if (!apdk_json_find(r, key, &i) || i >= r->len || r->p[i] != '"') { r->ok = 0; return s; }
        apdk_u32 j = i + 1;
        while (j < r->len && r->p[j] != '"') { if (r->p[j] == '\\') j++; j++; }
        if (j >= r->len) { r->ok = 0; return s; }
        s.ptr = (const char *)r->p + i + 1;
        s.len = j - i - 1;
        return s;
    }
    if (!apdk_mp_find(r, key, &i) || apdk_mp_str(r->p, r->len, &i, &s) < 0) r->ok = 0;
    return s;
}

/* The unsigned integer field `key`. */
static apdk_u64 apdk_get_u64(apdk_reader *r, const char *key) {
    apdk_u32 i;
    apdk_u64 v = 0;
    if (apdk_format == 2) {
        if (!apdk_json_find(r, key, &i)) { r->ok = 0; return 0; }
        int digits = 0;
        while (i < r->len && r->p[i] >= '0' && r->p[i] <= '9') { v = v * 10 + (r->p[i] - '0'); i++; digits++; }
        if (!digits) r->ok = 0;
        return v;
    }
    if (!apdk_mp_find(r, key, &i) || apdk_mp_uint(r->p, r->len, &i, &v) < 0) r->ok = 0;
    return v;
}

/* ---- writing a flat map -------------------------------------------------------- */
typedef struct { unsigned char *buf; apdk_u32 len, cap; int items, ok; } apdk_writer;
static apdk_writer apdk_out;

static void apdk_put(apdk_writer *w, const void *src, apdk_u32 n) {
    if (!w->ok) return;
    if (w->len + n > w->cap) {
        apdk_u32 cap = (w->cap ? w->cap * 2 : 256) + n;
        unsigned char *nb = (unsigned char *)apdk_alloc(cap);
        if (!nb) { w->ok = 0; return; }
        for (apdk_u32 i = 0; i < w->len; i++) nb[i] = w->buf[i];
        w->buf = nb;
        w->cap = cap;
    }
    for (apdk_u32 i = 0; i < n; i++) w->buf[w->len + i] = ((const unsigned char *)src)[i];
    w->len += n;
}

static void apdk_byte(apdk_writer *w, unsigned char b) { apdk_put(w, &b, 1); }

/* A fresh output buffer (valid until the next call). */
static apdk_writer *apdk_output(void) {
    apdk_out.buf = 0; apdk_out.len = 0; apdk_out.cap = 0; apdk_out.items = 0; apdk_out.ok = 1;
    return &apdk_out;
}

static void apdk_map(apdk_writer *w, apdk_u32 n) {
    if (apdk_format == 2) { apdk_byte(w, '{'); w->items = 0; }
    else apdk_byte(w, (unsigned char)(0x80 | (n & 0x0f)));
}

static void apdk_mp_strhdr(apdk_writer *w, apdk_u32 n) {
    if (n < 32) apdk_byte(w, (unsigned char)(0xa0 | n));
    else if (n < 256) { apdk_byte(w, 0xd9); apdk_byte(w, (unsigned char)n); }
    else { apdk_byte(w, 0xda); apdk_byte(w, (unsigned char)(n >> 8)); apdk_byte(w, (unsigned char)n); }
}

static void apdk_json_str(apdk_writer *w, const char *s, apdk_u32 n) {
    apdk_byte(w, '"');
    for (apdk_u32 i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { apdk_byte(w, '\\'); apdk_byte(w, c); }
        else if (c < 0x20) { apdk_put(w, "\\u00", 4); apdk_byte(w, "0123456789abcdef"[c >> 4]); apdk_byte(w, "0123456789abcdef"[c & 15]); }
        else apdk_byte(w, c);
    }
    apdk_byte(w, '"');
}

static void apdk_key(apdk_writer *w, const char *key) {
    apdk_u32 n = apdk_strlen(key);
    if (apdk_format == 2) {
        if (w->items++) apdk_byte(w, ',');
        apdk_json_str(w, key, n);
        apdk_byte(w, ':');
    } else {
        apdk_mp_strhdr(w, n);
        apdk_put(w, key, n);
    }
}

static void apdk_strn(apdk_writer *w, const char *s, apdk_u32 n) {
    if (apdk_format == 2) apdk_json_str(w, s, n);
    else { apdk_mp_strhdr(w, n); apdk_put(w, s, n); }
}

static void apdk_u64_value(apdk_writer *w, apdk_u64 v) {
    if (apdk_format == 2) {
        char digits[24]; int k = 0;
        do { digits[k++] = (char)('0' + v % 10); v /= 10; } while (v);
        while (k) apdk_byte(w, (unsigned char)digits[--k]);
        return;
    }
    if (v < 0x80) apdk_byte(w, (unsigned char)v);
    else if (v <= 0xff) { apdk_byte(w, 0xcc); apdk_byte(w, (unsigned char)v); }
    else if (v <= 0xffff) { apdk_byte(w, 0xcd); apdk_byte(w, (unsigned char)(v >> 8)); apdk_byte(w, (unsigned char)v); }
    else if (v <= 0xffffffffull) { apdk_byte(w, 0xce); for (int s = 24; s >= 0; s -= 8) apdk_byte(w, (unsigned char)(v >> s)); }
    else { apdk_byte(w, 0xcf); for (int s = 56; s >= 0; s -= 8) apdk_byte(w, (unsigned char)(v >> s)); }
}

/* Closes the map and returns the packed output for the host. */
static long long apdk_finish(apdk_writer *w) {
    if (apdk_format == 2) apdk_byte(w, '}');
    if (!w->ok) return apdk_fail("out of memory while writing the output");
    return apdk_pack(w->buf, w->len);
}

#endif /* ANYWASM_PDK_H */
