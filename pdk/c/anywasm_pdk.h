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
 *       if (!r.ok) return apdk_fail("greet expects {name}");
 *       apdk_writer *w = apdk_output();
 *       apdk_map(w, 1);
 *       apdk_key(w, "greeting"); apdk_strn(w, name.ptr, name.len);
 *       return apdk_finish(w);
 *   }
 *
 * Data: the whole MessagePack and JSON data models, in the format the host
 * chooses (anywasm_set_format): nil/null, booleans, signed and unsigned
 * 64-bit integers, floats (exact conversion to and from JSON text), strings
 * of any length (JSON escapes decoded), binary, extension types
 * (MessagePack), arrays and maps nested up to APDK_MAX_DEPTH.
 *
 * Reading: apdk_next() reads values one at a time, in document order. An
 * array or a map reports its number of elements (`count`; entries for a
 * map) and the next 1*count (array) or 2*count (map: key, value, ...)
 * values are its contents. apdk_skip() skips one value with its contents.
 * apdk_find(r, key, &v) and the apdk_get_* helpers look a key up in a
 * top-level map. A malformed input makes every later read answer
 * APDK_ERROR, with `ok` 0 and `err` saying why.
 *
 * Writing: apdk_map(w, n) and apdk_array(w, n) declare their size; the next
 * values fill them and they close by themselves (JSON brackets included).
 * Writing more values than declared, a non-string map key in JSON, or
 * finishing with values missing is an error that apdk_finish() reports
 * to the host.
 *
 * Build: clang-14 --target=wasm32-unknown-unknown -O2 -mbulk-memory -nostdlib \
 *          -Wl,--no-entry -Wl,--export-dynamic -o p.wasm p.c
 * (-mbulk-memory lets the compiler copy with memory.copy instead of a libc memcpy.)
 * With libc over WASI (the manifest must grant WASI):
 *        clang-14 --target=wasm32-wasi -O2 -mexec-model=reactor \
 *          -Wl,--export-dynamic -o p.wasm p.c
 * and the PDK's buffers come from malloc.
 */
#ifndef ANYWASM_PDK_H
#define ANYWASM_PDK_H

typedef unsigned int apdk_u32;
typedef unsigned long long apdk_u64;
typedef long long apdk_i64;

#define APDK_IMPORT(module, name) __attribute__((import_module(module), import_name(name)))
#define APDK_EXPORT(name) __attribute__((export_name(name), visibility("default")))
/* Every helper is static; a plugin uses some of them. */
#define APDK_FN static __attribute__((unused))

/* How deeply arrays and maps may nest, in inputs and in outputs. */
#ifndef APDK_MAX_DEPTH
#define APDK_MAX_DEPTH 128
#endif

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
APDK_FN apdk_u32 apdk_strlen(const char *s) { apdk_u32 n = 0; while (s[n]) n++; return n; }
APDK_FN int apdk_memeq(const char *a, const char *b, apdk_u32 n) {
    for (apdk_u32 i = 0; i < n; i++) if (a[i] != b[i]) return 0;
    return 1;
}

#ifdef __wasi__
/* With wasi-libc (clang --target=wasm32-wasi -mexec-model=reactor), the
 * heap belongs to malloc: each call's blocks are malloc'd, chained, and
 * freed before the next call's input. */
#include <stdlib.h>
typedef struct apdk_block { struct apdk_block *next; unsigned long long align; } apdk_block;
static apdk_block *apdk_blocks = 0;

APDK_FN void *apdk_alloc(apdk_u32 n) {
    if (n > 0xffffffffu - sizeof(apdk_block)) return 0;
    apdk_block *b = (apdk_block *)malloc(sizeof(apdk_block) + n);
    if (!b) return 0;
    b->next = apdk_blocks;
    apdk_blocks = b;
    return b + 1;
}

APDK_EXPORT("anywasm_alloc") int anywasm_alloc(int len) {
    while (apdk_blocks) { apdk_block *next = apdk_blocks->next; free(apdk_blocks); apdk_blocks = next; }
    void *p = apdk_alloc((apdk_u32)len > 0 ? (apdk_u32)len : 1);
    return (int)(apdk_u32)p;
}
#else
/* Freestanding: a bump allocator over the heap, reset before each call's
 * input. */
extern unsigned char __heap_base;
static unsigned char *apdk_heap_top = 0;

APDK_FN void *apdk_alloc(apdk_u32 n) {
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
    return (void *)start;
}

/* The host asks for the input buffer: everything from the previous call is
 * released first. */
APDK_EXPORT("anywasm_alloc") int anywasm_alloc(int len) {
    apdk_heap_top = &__heap_base;
    void *p = apdk_alloc((apdk_u32)len > 0 ? (apdk_u32)len : 1);
    return (int)(apdk_u32)p;
}
#endif

static int apdk_format = 1; /* 1 MessagePack, 2 JSON, 0 raw */
APDK_EXPORT("anywasm_set_format") void anywasm_set_format(int format) { apdk_format = format; }

/* ---- errors and results ---------------------------------------------------- */
APDK_FN long long apdk_fail(const char *msg) {
    anywasm_error(msg, (int)apdk_strlen(msg));
    return 0;
}

APDK_FN long long apdk_pack(const void *ptr, apdk_u32 len) {
    return (long long)(((apdk_u64)(apdk_u32)ptr << 32) | (apdk_u64)len);
}

typedef struct { const char *ptr; apdk_u32 len; } apdk_str;

/* Receives the pending result of a host call into fresh memory; len 0 and
 * ptr 0 if the call failed (status != 0). */
APDK_FN apdk_str apdk_take(long long pending, int *status) {
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

APDK_FN apdk_str apdk_config(const char *key) {
    int status;
    apdk_str v = apdk_take(anywasm_config_get(key, (int)apdk_strlen(key)), &status);
    if (status != 0) { v.ptr = 0; v.len = 0; }
    return v;
}

/* ---- exact decimal <-> double -------------------------------------------- */
/* Big unsigned integers, enough for any double times a power of ten or two
 * the conversions need (about 3 900 bits). */
#define APDK_BIG_LIMBS 136
typedef struct { apdk_u32 n; apdk_u32 d[APDK_BIG_LIMBS]; } apdk_big;

APDK_FN void apdk_big_set(apdk_big *a, apdk_u64 v) {
    a->n = 0;
    while (v) { a->d[a->n++] = (apdk_u32)v; v >>= 32; }
}

/* a = a * m + add; returns 0 if it no longer fits. */
APDK_FN int apdk_big_muladd(apdk_big *a, apdk_u32 m, apdk_u32 add) {
    apdk_u64 carry = add;
    for (apdk_u32 i = 0; i < a->n; i++) {
        apdk_u64 t = (apdk_u64)a->d[i] * m + carry;
        a->d[i] = (apdk_u32)t;
        carry = t >> 32;
    }
    if (carry) {
        if (a->n == APDK_BIG_LIMBS) return 0;
        a->d[a->n++] = (apdk_u32)carry;
    }
    return 1;
}

APDK_FN int apdk_big_pow(apdk_big *a, apdk_u32 base, apdk_u32 exp) {
    /* base^k for the largest k that fits in 32 bits, then the rest */
    apdk_u32 chunk = 1, k = 0;
    while ((apdk_u64)chunk * base <= 0xffffffffull) { chunk *= base; k++; }
    while (exp >= k) { if (!apdk_big_muladd(a, chunk, 0)) return 0; exp -= k; }
    while (exp--) if (!apdk_big_muladd(a, base, 0)) return 0;
    return 1;
}

APDK_FN apdk_u32 apdk_big_bits(const apdk_big *a) {
    if (!a->n) return 0;
    return (a->n - 1) * 32 + (32 - (apdk_u32)__builtin_clz(a->d[a->n - 1]));
}

APDK_FN int apdk_big_shl(apdk_big *dst, const apdk_big *a, apdk_u32 bits) {
    apdk_u32 limbs = bits / 32, sh = bits % 32;
    if (!a->n) { dst->n = 0; return 1; }
    if (a->n + limbs + 1 > APDK_BIG_LIMBS) return 0;
    apdk_u32 n = a->n + limbs;
    dst->d[n] = 0;
    for (apdk_u32 i = a->n; i-- > 0;) {
        apdk_u64 v = (apdk_u64)a->d[i] << sh;
        dst->d[i + limbs + 1] |= (apdk_u32)(v >> 32);
        dst->d[i + limbs] = (apdk_u32)v;
    }
    for (apdk_u32 i = 0; i < limbs; i++) dst->d[i] = 0;
    dst->n = n + 1;
    while (dst->n && !dst->d[dst->n - 1]) dst->n--;
    return 1;
}

APDK_FN int apdk_big_cmp(const apdk_big *a, const apdk_big *b) {
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    for (apdk_u32 i = a->n; i-- > 0;)
        if (a->d[i] != b->d[i]) return a->d[i] < b->d[i] ? -1 : 1;
    return 0;
}

/* a -= b, with a >= b. */
APDK_FN void apdk_big_sub(apdk_big *a, const apdk_big *b) {
    apdk_i64 borrow = 0;
    for (apdk_u32 i = 0; i < a->n; i++) {
        apdk_i64 t = (apdk_i64)a->d[i] - (i < b->n ? b->d[i] : 0) - borrow;
        borrow = t < 0;
        a->d[i] = (apdk_u32)(t + (borrow ? 0x100000000ll : 0));
    }
    while (a->n && !a->d[a->n - 1]) a->n--;
}

/* a /= m; returns the remainder. */
APDK_FN apdk_u32 apdk_big_divsmall(apdk_big *a, apdk_u32 m) {
    apdk_u64 rem = 0;
    for (apdk_u32 i = a->n; i-- > 0;) {
        apdk_u64 cur = (rem << 32) | a->d[i];
        a->d[i] = (apdk_u32)(cur / m);
        rem = cur % m;
    }
    while (a->n && !a->d[a->n - 1]) a->n--;
    return (apdk_u32)rem;
}

APDK_FN double apdk_bits_to_f64(apdk_u64 bits) { double d; __builtin_memcpy(&d, &bits, 8); return d; }
APDK_FN apdk_u64 apdk_f64_to_bits(double d) { apdk_u64 b; __builtin_memcpy(&b, &d, 8); return b; }

/* The double nearest to the JSON number text s[0..n) (ties to even), as
 * strtod would give; 0 if the text is not a JSON number. */
APDK_FN int apdk_parse_f64(const char *s, apdk_u32 n, double *out) {
    static char dig[802];
    apdk_u32 i = 0, nd = 0;
    int neg = 0, sticky = 0, any = 0;
    apdk_i64 exp10 = 0;
    if (i < n && s[i] == '-') { neg = 1; i++; }
    if (i < n && s[i] == '0') { i++; any = 1; }
    else while (i < n && s[i] >= '0' && s[i] <= '9') {
        any = 1;
        if (nd < 800) dig[nd++] = (char)(s[i] - '0');
        else { if (s[i] != '0') sticky = 1; exp10++; }
        i++;
    }
    if (!any) return 0;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (nd == 0 && s[i] == '0') exp10--;
            else if (nd < 800) { dig[nd++] = (char)(s[i] - '0'); exp10--; }
            else if (s[i] != '0') sticky = 1;
            i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0;
        apdk_i64 e = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) { eneg = s[i] == '-'; i++; }
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') { if (e < 100000) e = e * 10 + (s[i] - '0'); i++; }
        exp10 += eneg ? -e : e;
    }
    if (i != n) return 0;
    while (nd && dig[nd - 1] == 0) { nd--; exp10++; }
    apdk_u64 sign = neg ? 1ull << 63 : 0;
    if (nd == 0 && !sticky) { *out = apdk_bits_to_f64(sign); return 1; }
    if (sticky) { dig[nd++] = 1; exp10--; }
    if ((apdk_i64)nd + exp10 > 310) { *out = apdk_bits_to_f64(sign | 0x7ff0000000000000ull); return 1; }
    if ((apdk_i64)nd + exp10 < -325) { *out = apdk_bits_to_f64(sign); return 1; }
    apdk_big num, den, a, t;
    apdk_big_set(&num, 0);
    for (apdk_u32 k = 0; k < nd; k++) apdk_big_muladd(&num, 10, (apdk_u32)dig[k]);
    apdk_big_set(&den, 1);
    if (exp10 >= 0) apdk_big_pow(&num, 10, (apdk_u32)exp10);
    else apdk_big_pow(&den, 10, (apdk_u32)-exp10);
    /* q = num * 2^s / den with 55 to 57 bits */
    int s2 = 56 - ((int)apdk_big_bits(&num) - (int)apdk_big_bits(&den));
    if (s2 >= 0) { apdk_big_shl(&a, &num, (apdk_u32)s2); }
    else { a = num; apdk_big_shl(&t, &den, (apdk_u32)-s2); den = t; }
    apdk_u64 q = 0;
    for (int bit = 57; bit >= 0; bit--) {
        apdk_big_shl(&t, &den, (apdk_u32)bit);
        if (apdk_big_cmp(&a, &t) >= 0) { apdk_big_sub(&a, &t); q |= 1ull << bit; }
    }
    int rest = a.n != 0;
    while (q >= (1ull << 54)) { rest |= (int)(q & 1); q >>= 1; s2--; }
    /* value = q * 2^-s2, q in [2^53, 2^54): 53 bits and a rounding bit */
    int e2 = 53 - s2;
    if (e2 > 1023) { *out = apdk_bits_to_f64(sign | 0x7ff0000000000000ull); return 1; }
    if (e2 < -1022) {
        int extra = -1022 - e2;
        if (extra > 60) { rest |= q != 0; q = 0; }
        else { rest |= (q & ((1ull << extra) - 1)) != 0; q >>= extra; }
        e2 = -1022;
        apdk_u64 m = q >> 1;
        if ((q & 1) && (rest || (m & 1))) m++;
        *out = apdk_bits_to_f64(sign | m); /* m == 2^52 is the smallest normal */
        return 1;
    }
    apdk_u64 m = q >> 1;
    if ((q & 1) && (rest || (m & 1))) m++;
    if (m == (1ull << 53)) { m >>= 1; e2++; }
    if (e2 > 1023) { *out = apdk_bits_to_f64(sign | 0x7ff0000000000000ull); return 1; }
    *out = apdk_bits_to_f64(sign | ((apdk_u64)(e2 + 1023) << 52) | (m & ((1ull << 52) - 1)));
    return 1;
}

/* Writes finite `v` as JSON text into buf (at least 40 bytes) with the
 * fewest of 15, 16 or 17 significant digits that read back as `v`; returns
 * the length. */
APDK_FN apdk_u32 apdk_format_f64(double v, char *buf) {
    static char all[800];
    char dig[18];
    apdk_u64 bits = apdk_f64_to_bits(v);
    apdk_u32 o = 0;
    if (bits >> 63) buf[o++] = '-';
    int expf = (int)((bits >> 52) & 0x7ff);
    apdk_u64 frac = bits & ((1ull << 52) - 1);
    if (!expf && !frac) { buf[o++] = '0'; buf[o++] = '.'; buf[o++] = '0'; return o; }
    apdk_u64 m = expf ? frac | (1ull << 52) : frac;
    int e = expf ? expf - 1075 : -1074;
    apdk_big b;
    apdk_big_set(&b, m);
    int exp10 = 0;
    if (e >= 0) { apdk_big t; apdk_big_shl(&t, &b, (apdk_u32)e); b = t; }
    else { apdk_big_pow(&b, 5, (apdk_u32)-e); exp10 = e; }
    /* all decimal digits of b, most significant first */
    apdk_u32 na = 0;
    while (b.n) {
        apdk_u32 r = apdk_big_divsmall(&b, 1000000000u);
        for (int k = 0; k < 9; k++) { all[na++] = (char)(r % 10); r /= 10; }
    }
    while (na && all[na - 1] == 0) na--;
    for (apdk_u32 k = 0; k < na / 2; k++) { char c = all[k]; all[k] = all[na - 1 - k]; all[na - 1 - k] = c; }
    for (int p = 15; p <= 17; p++) {
        /* round to p digits, ties to even on the exact digits */
        int nd = (int)na < p ? (int)na : p;
        int point = (int)na + exp10; /* value = 0.d1d2... * 10^point */
        for (int k = 0; k < nd; k++) dig[k] = all[k];
        if ((int)na > p) {
            int up = all[p] > 5;
            if (all[p] == 5) {
                int tail = 0;
                for (apdk_u32 k = (apdk_u32)p + 1; k < na; k++) if (all[k]) { tail = 1; break; }
                up = tail || (dig[p - 1] & 1);
            }
            if (up) {
                int k = nd - 1;
                while (k >= 0 && dig[k] == 9) dig[k--] = 0;
                if (k >= 0) dig[k]++;
                else { dig[0] = 1; for (int j = 1; j < nd; j++) dig[j] = 0; point++; }
            }
        }
        while (nd > 1 && dig[nd - 1] == 0) nd--;
        apdk_u32 w = o;
        if (point > 0 && point <= 21) {
            for (int k = 0; k < point; k++) buf[w++] = (char)('0' + (k < nd ? dig[k] : 0));
            buf[w++] = '.';
            if (nd > point) for (int k = point; k < nd; k++) buf[w++] = (char)('0' + dig[k]);
            else buf[w++] = '0';
        } else if (point <= 0 && point > -6) {
            buf[w++] = '0'; buf[w++] = '.';
            for (int k = 0; k < -point; k++) buf[w++] = '0';
            for (int k = 0; k < nd; k++) buf[w++] = (char)('0' + dig[k]);
        } else {
            buf[w++] = (char)('0' + dig[0]);
            buf[w++] = '.';
            if (nd > 1) for (int k = 1; k < nd; k++) buf[w++] = (char)('0' + dig[k]);
            else buf[w++] = '0';
            buf[w++] = 'e';
            int x = point - 1;
            if (x < 0) { buf[w++] = '-'; x = -x; }
            char t[6]; int tn = 0;
            do { t[tn++] = (char)('0' + x % 10); x /= 10; } while (x);
            while (tn) buf[w++] = t[--tn];
        }
        double back;
        if (p == 17 || (apdk_parse_f64(buf, w, &back) && apdk_f64_to_bits(back) == bits)) return w;
    }
    return o; /* not reached: 17 digits always read back */
}

/* ---- reading ------------------------------------------------------------------ */
enum {
    APDK_ERROR = 0, /* malformed input (see the reader's err) or nothing left */
    APDK_NIL,
    APDK_BOOL,
    APDK_INT,   /* a negative integer: .i */
    APDK_UINT,  /* a non-negative integer: .u (and .i when it fits) */
    APDK_FLOAT, /* .f; .is_f32 for MessagePack float 32 */
    APDK_STR,   /* .ptr, .len: the bytes (JSON escapes decoded) */
    APDK_BIN,   /* .ptr, .len (MessagePack only) */
    APDK_EXT,   /* .ext_type, .ptr, .len (MessagePack only) */
    APDK_ARRAY, /* .count elements follow */
    APDK_MAP    /* .count entries follow: key, value, key, value, ... */
};

typedef struct {
    int type;
    int boolean;
    apdk_i64 i;
    apdk_u64 u;
    double f;
    int is_f32;
    const char *ptr;
    apdk_u32 len;
    int ext_type;
    apdk_u32 count;
} apdk_value;

typedef struct { apdk_u32 left; unsigned char map, first; } apdk_level;

typedef struct {
    const unsigned char *p;
    apdk_u32 len, i;
    int ok;
    const char *err;
    int json;
    int depth;
    apdk_level stack[APDK_MAX_DEPTH];
} apdk_reader;

APDK_FN apdk_reader apdk_input(int ptr, int len) {
    apdk_reader r;
    r.p = (const unsigned char *)ptr;
    r.len = len > 0 ? (apdk_u32)len : 0;
    r.i = 0;
    r.ok = 1;
    r.err = 0;
    r.json = apdk_format == 2;
    r.depth = 0;
    return r;
}

APDK_FN int apdk_bad(apdk_reader *r, const char *why) {
    if (r->ok) { r->ok = 0; r->err = why; }
    return APDK_ERROR;
}

APDK_FN apdk_u64 apdk_be(const unsigned char *p, apdk_u32 n) {
    apdk_u64 v = 0;
    for (apdk_u32 k = 0; k < n; k++) v = (v << 8) | p[k];
    return v;
}

/* n more bytes at r->i? */
APDK_FN int apdk_has(const apdk_reader *r, apdk_u64 n) { return n <= (apdk_u64)(r->len - r->i); }

APDK_FN void apdk_ws(apdk_reader *r) {
    while (r->i < r->len && (r->p[r->i] == ' ' || r->p[r->i] == '\n' || r->p[r->i] == '\r' || r->p[r->i] == '\t')) r->i++;
}

/* Pushes a container of `items` values (2 per map entry). */
APDK_FN int apdk_push(apdk_reader *r, int map, apdk_u64 items) {
    if (r->depth == APDK_MAX_DEPTH) return apdk_bad(r, "nested deeper than APDK_MAX_DEPTH");
    /* every value takes at least one byte */
    if (!apdk_has(r, items)) return apdk_bad(r, "a container claims more elements than the input holds");
    apdk_level *l = &r->stack[r->depth++];
    l->left = (apdk_u32)items;
    l->map = (unsigned char)map;
    l->first = 1;
    return 1;
}

/* Closes containers whose values have all been read. */
APDK_FN int apdk_close(apdk_reader *r) {
    while (r->ok && r->depth > 0 && r->stack[r->depth - 1].left == 0) {
        if (r->json) {
            apdk_ws(r);
            char want = r->stack[r->depth - 1].map ? '}' : ']';
            if (r->i >= r->len || r->p[r->i] != want) return apdk_bad(r, "a JSON container does not close where expected");
            r->i++;
        }
        r->depth--;
    }
    return r->ok;
}

/* JSON: the number of elements of the container whose bracket is at r->i. */
APDK_FN int apdk_json_count(apdk_reader *r, apdk_u64 *count) {
    apdk_u32 i = r->i + 1, depth = 0;
    int any = 0, in_str = 0;
    apdk_u64 commas = 0;
    for (; i < r->len; i++) {
        unsigned char c = r->p[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '"') { in_str = 1; any = 1; continue; }
        if (c == '{' || c == '[') { depth++; any = 1; continue; }
        if (c == '}' || c == ']') {
            if (depth == 0) { *count = any ? commas + 1 : 0; return 1; }
            depth--;
            continue;
        }
        if (c == ',' && depth == 0) commas++;
        any = 1;
    }
    return apdk_bad(r, "a JSON container is not closed");
}

APDK_FN int apdk_hex(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

APDK_FN int apdk_u4(const apdk_reader *r, apdk_u32 at, apdk_u32 *out) {
    if (at + 4 > r->len) return 0;
    apdk_u32 v = 0;
    for (int k = 0; k < 4; k++) {
        int h = apdk_hex(r->p[at + k]);
        if (h < 0) return 0;
        v = (v << 4) | (apdk_u32)h;
    }
    *out = v;
    return 1;
}

/* JSON: the string at r->i (on its quote), escapes decoded. */
APDK_FN int apdk_json_string(apdk_reader *r, apdk_value *v) {
    apdk_u32 start = ++r->i, i = start;
    int escaped = 0;
    while (i < r->len && r->p[i] != '"') {
        if (r->p[i] < 0x20) return apdk_bad(r, "a control character in a JSON string");
        if (r->p[i] == '\\') { escaped = 1; i++; }
        i++;
    }
    if (i >= r->len) return apdk_bad(r, "a JSON string is not closed");
    apdk_u32 end = i;
    r->i = end + 1;
    v->type = APDK_STR;
    if (!escaped) { v->ptr = (const char *)r->p + start; v->len = end - start; return APDK_STR; }
    unsigned char *out = (unsigned char *)apdk_alloc(end - start);
    if (!out) return apdk_bad(r, "out of memory decoding a string");
    apdk_u32 o = 0;
    for (i = start; i < end; i++) {
        unsigned char c = r->p[i];
        if (c != '\\') { out[o++] = c; continue; }
        c = r->p[++i];
        switch (c) {
        case '"': case '\\': case '/': out[o++] = c; break;
        case 'b': out[o++] = 8; break;
        case 'f': out[o++] = 12; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            apdk_u32 cp, lo;
            if (!apdk_u4(r, i + 1, &cp)) return apdk_bad(r, "a bad \\u escape");
            i += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) return apdk_bad(r, "a lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (i + 2 >= end || r->p[i + 1] != '\\' || r->p[i + 2] != 'u' || !apdk_u4(r, i + 3, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return apdk_bad(r, "a lone high surrogate");
                i += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp < 0x80) out[o++] = (unsigned char)cp;
            else if (cp < 0x800) { out[o++] = (unsigned char)(0xc0 | cp >> 6); out[o++] = (unsigned char)(0x80 | (cp & 63)); }
            else if (cp < 0x10000) { out[o++] = (unsigned char)(0xe0 | cp >> 12); out[o++] = (unsigned char)(0x80 | ((cp >> 6) & 63)); out[o++] = (unsigned char)(0x80 | (cp & 63)); }
            else { out[o++] = (unsigned char)(0xf0 | cp >> 18); out[o++] = (unsigned char)(0x80 | ((cp >> 12) & 63)); out[o++] = (unsigned char)(0x80 | ((cp >> 6) & 63)); out[o++] = (unsigned char)(0x80 | (cp & 63)); }
            break;
        }
        default: return apdk_bad(r, "a bad escape in a JSON string");
        }
    }
    v->ptr = (const char *)out;
    v->len = o;
    return APDK_STR;
}

APDK_FN int apdk_json_word(apdk_reader *r, const char *word) {
    apdk_u32 n = apdk_strlen(word);
    if (!apdk_has(r, n) || !apdk_memeq((const char *)r->p + r->i, word, n)) return 0;
    r->i += n;
    return 1;
}

APDK_FN int apdk_json_number(apdk_reader *r, apdk_value *v) {
    apdk_u32 start = r->i;
    int is_int = 1;
    while (r->i < r->len) {
        unsigned char c = r->p[r->i];
        if (c == '.' || c == 'e' || c == 'E') is_int = 0;
        else if (!(c == '-' || c == '+' || (c >= '0' && c <= '9'))) break;
        r->i++;
    }
    const char *s = (const char *)r->p + start;
    apdk_u32 n = r->i - start;
    double f;
    if (!apdk_parse_f64(s, n, &f)) return apdk_bad(r, "a malformed JSON number");
    if (((apdk_f64_to_bits(f) >> 52) & 0x7ff) == 0x7ff) return apdk_bad(r, "a JSON number out of range");
    if (is_int) {
        int neg = s[0] == '-';
        apdk_u64 u = 0;
        int fits = 1;
        for (apdk_u32 k = (apdk_u32)neg; k < n; k++) {
            apdk_u64 d = (apdk_u64)(s[k] - '0');
            if (u > (0xffffffffffffffffull - d) / 10) { fits = 0; break; }
            u = u * 10 + d;
        }
        if (fits && !neg) { v->type = APDK_UINT; v->u = u; v->i = (apdk_i64)u; v->f = f; return APDK_UINT; }
        /* like serde_json: "-0" and integers below -2^63 are floats */
        if (fits && neg && u != 0 && u <= (1ull << 63)) {
            v->type = APDK_INT;
            v->i = (apdk_i64)(0 - u);
            v->f = f;
            return APDK_INT;
        }
    }
    v->type = APDK_FLOAT;
    v->f = f;
    return APDK_FLOAT;
}

APDK_FN int apdk_next_json(apdk_reader *r, apdk_value *v, int key) {
    apdk_ws(r);
    if (r->i >= r->len) return apdk_bad(r, "unexpected end of JSON input");
    unsigned char c = r->p[r->i];
    if (key && c != '"') return apdk_bad(r, "a JSON object key is not a string");
    if (c == '"') return apdk_json_string(r, v);
    if (c == '{' || c == '[') {
        apdk_u64 count;
        if (!apdk_json_count(r, &count)) return APDK_ERROR;
        r->i++;
        v->type = c == '{' ? APDK_MAP : APDK_ARRAY;
        if (count > 0x7fffffffull) return apdk_bad(r, "too many elements");
        v->count = (apdk_u32)count;
        if (!apdk_push(r, c == '{', c == '{' ? count * 2 : count)) return APDK_ERROR;
        return v->type;
    }
    if (apdk_json_word(r, "null")) { v->type = APDK_NIL; return APDK_NIL; }
    if (apdk_json_word(r, "true")) { v->type = APDK_BOOL; v->boolean = 1; return APDK_BOOL; }
    if (apdk_json_word(r, "false")) { v->type = APDK_BOOL; v->boolean = 0; return APDK_BOOL; }
    if (c == '-' || (c >= '0' && c <= '9')) return apdk_json_number(r, v);
    return apdk_bad(r, "unexpected character in JSON input");
}

APDK_FN int apdk_next_mp(apdk_reader *r, apdk_value *v) {
    if (!apdk_has(r, 1)) return apdk_bad(r, "unexpected end of MessagePack input");
    unsigned char b = r->p[r->i++];
    apdk_u32 size = 0;
    apdk_u64 n = 0;
    if (b <= 0x7f) { v->type = APDK_UINT; v->u = b; v->i = b; v->f = b; return APDK_UINT; }
    if (b >= 0xe0) { v->type = APDK_INT; v->i = (signed char)b; v->f = (double)v->i; return APDK_INT; }
    if ((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90) {
        int map = (b & 0xf0) == 0x80;
        v->type = map ? APDK_MAP : APDK_ARRAY;
        v->count = b & 0x0f;
        return apdk_push(r, map, map ? (apdk_u64)v->count * 2 : v->count) ? v->type : APDK_ERROR;
    }
    if ((b & 0xe0) == 0xa0) { n = b & 0x1f; goto str; }
    switch (b) {
    case 0xc0: v->type = APDK_NIL; return APDK_NIL;
    case 0xc2: case 0xc3: v->type = APDK_BOOL; v->boolean = b == 0xc3; return APDK_BOOL;
    case 0xc4: case 0xc5: case 0xc6:
        size = 1u << (b - 0xc4);
        if (!apdk_has(r, size)) return apdk_bad(r, "truncated binary");
        n = apdk_be(r->p + r->i, size); r->i += size;
        if (!apdk_has(r, n)) return apdk_bad(r, "truncated binary");
        v->type = APDK_BIN; v->ptr = (const char *)r->p + r->i; v->len = (apdk_u32)n; r->i += (apdk_u32)n;
        return APDK_BIN;
    case 0xc7: case 0xc8: case 0xc9:
        size = 1u << (b - 0xc7);
        if (!apdk_has(r, size + 1)) return apdk_bad(r, "truncated extension");
        n = apdk_be(r->p + r->i, size); r->i += size;
        goto ext;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        n = 1u << (b - 0xd4);
        if (!apdk_has(r, 1)) return apdk_bad(r, "truncated extension");
        goto ext;
    case 0xca: {
        if (!apdk_has(r, 4)) return apdk_bad(r, "truncated float");
        apdk_u32 bits = (apdk_u32)apdk_be(r->p + r->i, 4);
        float f;
        __builtin_memcpy(&f, &bits, 4);
        r->i += 4;
        v->type = APDK_FLOAT; v->f = (double)f; v->is_f32 = 1;
        return APDK_FLOAT;
    }
    case 0xcb:
        if (!apdk_has(r, 8)) return apdk_bad(r, "truncated float");
        v->type = APDK_FLOAT; v->f = apdk_bits_to_f64(apdk_be(r->p + r->i, 8)); v->is_f32 = 0;
        r->i += 8;
        return APDK_FLOAT;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        size = 1u << (b - 0xcc);
        if (!apdk_has(r, size)) return apdk_bad(r, "truncated integer");
        v->u = apdk_be(r->p + r->i, size); r->i += size;
        v->type = APDK_UINT; v->i = (apdk_i64)v->u; v->f = (double)v->u;
        return APDK_UINT;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        size = 1u << (b - 0xd0);
        if (!apdk_has(r, size)) return apdk_bad(r, "truncated integer");
        apdk_u64 raw = apdk_be(r->p + r->i, size);
        r->i += size;
        apdk_u32 shift = 64 - 8 * size;
        apdk_i64 x = (apdk_i64)(raw << shift) >> shift;
        v->f = (double)x;
        if (x >= 0) { v->type = APDK_UINT; v->u = (apdk_u64)x; v->i = x; return APDK_UINT; }
        v->type = APDK_INT; v->i = x;
        return APDK_INT;
    }
    case 0xd9: case 0xda: case 0xdb:
        size = 1u << (b - 0xd9);
        if (!apdk_has(r, size)) return apdk_bad(r, "truncated string");
        n = apdk_be(r->p + r->i, size); r->i += size;
        goto str;
    case 0xdc: case 0xdd: case 0xde: case 0xdf: {
        int map = b >= 0xde;
        size = (b == 0xdc || b == 0xde) ? 2 : 4;
        if (!apdk_has(r, size)) return apdk_bad(r, "truncated container");
        n = apdk_be(r->p + r->i, size); r->i += size;
        v->type = map ? APDK_MAP : APDK_ARRAY;
        v->count = (apdk_u32)n;
        return apdk_push(r, map, map ? n * 2 : n) ? v->type : APDK_ERROR;
    }
    default: return apdk_bad(r, "a byte that starts no MessagePack value (0xc1)");
    }
str:
    if (!apdk_has(r, n)) return apdk_bad(r, "truncated string");
    v->type = APDK_STR; v->ptr = (const char *)r->p + r->i; v->len = (apdk_u32)n; r->i += (apdk_u32)n;
    return APDK_STR;
ext:
    if (!apdk_has(r, n + 1)) return apdk_bad(r, "truncated extension");
    v->type = APDK_EXT; v->ext_type = (signed char)r->p[r->i];
    v->ptr = (const char *)r->p + r->i + 1; v->len = (apdk_u32)n; r->i += (apdk_u32)n + 1;
    return APDK_EXT;
}

/* Reads the next value; its type (APDK_ERROR when malformed or past the end). */
APDK_FN int apdk_next(apdk_reader *r, apdk_value *v) {
    v->type = APDK_ERROR; v->count = 0; v->is_f32 = 0; v->ptr = 0; v->len = 0;
    if (!r->ok || !apdk_close(r)) return APDK_ERROR;
    int key = 0;
    if (r->depth > 0) {
        apdk_level *l = &r->stack[r->depth - 1];
        key = l->map && l->left % 2 == 0;
        if (r->json) {
            apdk_ws(r);
            char sep = l->map && !key ? ':' : ',';
            if (sep == ':' || !l->first) {
                if (r->i >= r->len || r->p[r->i] != (unsigned char)sep) return apdk_bad(r, sep == ':' ? "expected `:` in a JSON object" : "expected `,` in a JSON container");
                r->i++;
            }
        }
        l->first = 0;
        l->left--;
    } else if (r->i > 0) {
        return apdk_bad(r, "only one top-level value is read");
    }
    int t = r->json ? apdk_next_json(r, v, key) : apdk_next_mp(r, v);
    if (t == APDK_ERROR) return APDK_ERROR;
    return t;
}

/* Whether the container at stack level `level` still has values to read
 * (containers close lazily, so a level with nothing left may still be on
 * the stack). */
APDK_FN int apdk_pending(const apdk_reader *r, int level) {
    for (int d = level; d < r->depth; d++) if (r->stack[d].left > 0) return 1;
    return 0;
}

/* Reads the contents of the container whose header was just read. */
APDK_FN int apdk_skip_contents(apdk_reader *r) {
    apdk_value v;
    int level = r->depth - 1;
    while (r->ok && apdk_pending(r, level))
        if (apdk_next(r, &v) == APDK_ERROR) return 0;
    return r->ok;
}

/* Skips one value and everything in it. */
APDK_FN int apdk_skip(apdk_reader *r) {
    apdk_value v;
    int t = apdk_next(r, &v);
    if (t == APDK_ERROR) return 0;
    if (t != APDK_ARRAY && t != APDK_MAP) return 1;
    return apdk_skip_contents(r);
}

/* After the last value: closes open containers and checks that nothing
 * but whitespace follows. */
APDK_FN int apdk_done(apdk_reader *r) {
    if (!apdk_close(r)) return 0;
    if (r->depth > 0) return apdk_bad(r, "values missing at the end of the input");
    if (r->json) apdk_ws(r);
    if (r->i != r->len) return apdk_bad(r, "trailing bytes after the value");
    return 1;
}

/* Finds `key` in the input's top-level map and reads its value into v
 * (containers: their header, with the contents next in r). 0 if absent. */
APDK_FN int apdk_find(apdk_reader *r, const char *key, apdk_value *v) {
    apdk_reader fresh = apdk_input((int)r->p, (int)r->len);
    fresh.json = r->json;
    *r = fresh;
    if (apdk_next(r, v) != APDK_MAP) return 0;
    apdk_u32 klen = apdk_strlen(key), entries = v->count;
    for (apdk_u32 k = 0; k < entries; k++) {
        apdk_value name;
        int t = apdk_next(r, &name);
        if (t == APDK_ERROR) return 0;
        if (t == APDK_STR && name.len == klen && apdk_memeq(name.ptr, key, klen))
            return apdk_next(r, v) != APDK_ERROR;
        /* a container key (MessagePack): skip its contents */
        if ((t == APDK_ARRAY || t == APDK_MAP) && !apdk_skip_contents(r)) return 0;
        if (!apdk_skip(r)) return 0;
    }
    return 0;
}

/* The string field `key` of a top-level map; ok = 0 in the reader if it is
 * missing or not a string. */
APDK_FN apdk_str apdk_get_str(apdk_reader *r, const char *key) {
    apdk_str s = {0, 0};
    apdk_value v;
    int ok = r->ok;
    if (!apdk_find(r, key, &v) || v.type != APDK_STR) { r->ok = 0; return s; }
    r->ok = ok;
    s.ptr = v.ptr;
    s.len = v.len;
    return s;
}

/* The non-negative integer field `key`. */
APDK_FN apdk_u64 apdk_get_u64(apdk_reader *r, const char *key) {
    apdk_value v;
    int ok = r->ok;
    if (!apdk_find(r, key, &v) || v.type != APDK_UINT) { r->ok = 0; return 0; }
    r->ok = ok;
    return v.u;
}

/* The integer field `key` (any sign, within 64-bit signed range). */
APDK_FN apdk_i64 apdk_get_i64(apdk_reader *r, const char *key) {
    apdk_value v;
    int ok = r->ok;
    if (!apdk_find(r, key, &v) || !(v.type == APDK_INT || (v.type == APDK_UINT && v.u <= 0x7fffffffffffffffull))) { r->ok = 0; return 0; }
    r->ok = ok;
    return v.i;
}

/* The number field `key` as a double (integers converted). */
APDK_FN double apdk_get_f64(apdk_reader *r, const char *key) {
    apdk_value v;
    int ok = r->ok;
    if (!apdk_find(r, key, &v) || !(v.type == APDK_FLOAT || v.type == APDK_INT || v.type == APDK_UINT)) { r->ok = 0; return 0; }
    r->ok = ok;
    return v.f;
}

/* The boolean field `key`. */
APDK_FN int apdk_get_bool(apdk_reader *r, const char *key) {
    apdk_value v;
    int ok = r->ok;
    if (!apdk_find(r, key, &v) || v.type != APDK_BOOL) { r->ok = 0; return 0; }
    r->ok = ok;
    return v.boolean;
}

/* ---- writing ---------------------------------------------------------------- */
typedef struct {
    unsigned char *buf;
    apdk_u32 len, cap;
    int ok;
    const char *err;
    int depth, top_done;
    apdk_level stack[APDK_MAX_DEPTH];
} apdk_writer;
static apdk_writer apdk_out;

APDK_FN void apdk_werr(apdk_writer *w, const char *why) {
    if (w->ok) { w->ok = 0; w->err = why; }
}

APDK_FN void apdk_put(apdk_writer *w, const void *src, apdk_u32 n) {
    if (!w->ok) return;
    if (n > 0xffffffffu - w->len) { apdk_werr(w, "output too large"); return; }
    if (w->len + n > w->cap) {
        apdk_u64 want = (apdk_u64)(w->cap ? w->cap : 128) * 2 + n;
        if (want > 0xffff0000u) want = (apdk_u64)w->len + n;
        unsigned char *nb = (unsigned char *)apdk_alloc((apdk_u32)want);
        if (!nb) { apdk_werr(w, "out of memory while writing the output"); return; }
        __builtin_memcpy(nb, w->buf, w->len);
        w->buf = nb;
        w->cap = (apdk_u32)want;
    }
    __builtin_memcpy(w->buf + w->len, src, n);
    w->len += n;
}

APDK_FN void apdk_byte(apdk_writer *w, unsigned char b) { apdk_put(w, &b, 1); }

APDK_FN void apdk_be_put(apdk_writer *w, unsigned char tag, apdk_u64 v, int bytes) {
    unsigned char b[9];
    b[0] = tag;
    for (int k = 0; k < bytes; k++) b[1 + k] = (unsigned char)(v >> (8 * (bytes - 1 - k)));
    apdk_put(w, b, (apdk_u32)bytes + 1);
}

/* A fresh output buffer (valid until the next call). */
APDK_FN apdk_writer *apdk_output(void) {
    apdk_out.buf = 0; apdk_out.len = 0; apdk_out.cap = 0; apdk_out.ok = 1; apdk_out.err = 0;
    apdk_out.depth = 0; apdk_out.top_done = 0;
    return &apdk_out;
}

/* Before a value: separators and counts. `is_str`: map keys in JSON must be strings. */
APDK_FN void apdk_wbegin(apdk_writer *w, int is_str) {
    if (!w->ok) return;
    if (w->depth == 0) {
        if (w->top_done) apdk_werr(w, "a second top-level value in the output");
        w->top_done = 1;
        return;
    }
    apdk_level *l = &w->stack[w->depth - 1];
    if (l->left == 0) { apdk_werr(w, "more values than the array or map declared"); return; }
    int key = l->map && l->left % 2 == 0;
    if (apdk_format == 2) {
        if (key && !is_str) { apdk_werr(w, "a JSON object key must be a string"); return; }
        if (l->map && !key) apdk_byte(w, ':');
        else if (!l->first) apdk_byte(w, ',');
    }
    l->first = 0;
    l->left--;
}

/* After a value: closes the containers it completed. */
APDK_FN void apdk_wend(apdk_writer *w) {
    while (w->ok && w->depth > 0 && w->stack[w->depth - 1].left == 0) {
        if (apdk_format == 2) apdk_byte(w, w->stack[w->depth - 1].map ? '}' : ']');
        w->depth--;
    }
}

APDK_FN void apdk_wopen(apdk_writer *w, int map, apdk_u32 n) {
    if (map && n > 0x7fffffffu) apdk_werr(w, "a map of more than 2^31 entries");
    apdk_wbegin(w, 0);
    if (!w->ok) return;
    if (w->depth == APDK_MAX_DEPTH) { apdk_werr(w, "output nested deeper than APDK_MAX_DEPTH"); return; }
    if (apdk_format == 2) apdk_byte(w, map ? '{' : '[');
    else if (n < 16) apdk_byte(w, (unsigned char)((map ? 0x80 : 0x90) | n));
    else if (n <= 0xffff) apdk_be_put(w, map ? 0xde : 0xdc, n, 2);
    else apdk_be_put(w, map ? 0xdf : 0xdd, n, 4);
    apdk_level *l = &w->stack[w->depth++];
    l->left = map ? n * 2 : n;
    l->map = (unsigned char)map;
    l->first = 1;
    apdk_wend(w);
}

/* A map of n entries: then n times a key and a value. */
APDK_FN void apdk_map(apdk_writer *w, apdk_u32 n) { apdk_wopen(w, 1, n); }
/* An array of n values. */
APDK_FN void apdk_array(apdk_writer *w, apdk_u32 n) { apdk_wopen(w, 0, n); }

APDK_FN void apdk_json_str(apdk_writer *w, const char *s, apdk_u32 n) {
    apdk_byte(w, '"');
    apdk_u32 run = 0;
    for (apdk_u32 i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '"' && c != '\\' && c >= 0x20) continue;
        apdk_put(w, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') { apdk_byte(w, '\\'); apdk_byte(w, c); }
        else if (c == '\n') apdk_put(w, "\\n", 2);
        else if (c == '\t') apdk_put(w, "\\t", 2);
        else if (c == '\r') apdk_put(w, "\\r", 2);
        else { apdk_put(w, "\\u00", 4); apdk_byte(w, "0123456789abcdef"[c >> 4]); apdk_byte(w, "0123456789abcdef"[c & 15]); }
    }
    apdk_put(w, s + run, n - run);
    apdk_byte(w, '"');
}

/* A string of n bytes (a map key or a value). */
APDK_FN void apdk_strn(apdk_writer *w, const char *s, apdk_u32 n) {
    apdk_wbegin(w, 1);
    if (apdk_format == 2) apdk_json_str(w, s, n);
    else {
        if (n < 32) apdk_byte(w, (unsigned char)(0xa0 | n));
        else if (n <= 0xff) apdk_be_put(w, 0xd9, n, 1);
        else if (n <= 0xffff) apdk_be_put(w, 0xda, n, 2);
        else apdk_be_put(w, 0xdb, n, 4);
        apdk_put(w, s, n);
    }
    apdk_wend(w);
}

/* A NUL-terminated map key (or string). */
APDK_FN void apdk_key(apdk_writer *w, const char *key) { apdk_strn(w, key, apdk_strlen(key)); }

APDK_FN void apdk_nil(apdk_writer *w) {
    apdk_wbegin(w, 0);
    if (apdk_format == 2) apdk_put(w, "null", 4); else apdk_byte(w, 0xc0);
    apdk_wend(w);
}

APDK_FN void apdk_bool(apdk_writer *w, int b) {
    apdk_wbegin(w, 0);
    if (apdk_format == 2) { if (b) apdk_put(w, "true", 4); else apdk_put(w, "false", 5); }
    else apdk_byte(w, b ? 0xc3 : 0xc2);
    apdk_wend(w);
}

APDK_FN void apdk_json_digits(apdk_writer *w, int neg, apdk_u64 v) {
    char digits[24]; int k = 0;
    if (neg) apdk_byte(w, '-');
    do { digits[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k) apdk_byte(w, (unsigned char)digits[--k]);
}

/* A non-negative integer. */
APDK_FN void apdk_u64_value(apdk_writer *w, apdk_u64 v) {
    apdk_wbegin(w, 0);
    if (apdk_format == 2) apdk_json_digits(w, 0, v);
    else if (v < 0x80) apdk_byte(w, (unsigned char)v);
    else if (v <= 0xff) apdk_be_put(w, 0xcc, v, 1);
    else if (v <= 0xffff) apdk_be_put(w, 0xcd, v, 2);
    else if (v <= 0xffffffffull) apdk_be_put(w, 0xce, v, 4);
    else apdk_be_put(w, 0xcf, v, 8);
    apdk_wend(w);
}

/* A signed integer. */
APDK_FN void apdk_i64_value(apdk_writer *w, apdk_i64 v) {
    if (v >= 0) { apdk_u64_value(w, (apdk_u64)v); return; }
    apdk_wbegin(w, 0);
    if (apdk_format == 2) apdk_json_digits(w, 1, 0 - (apdk_u64)v);
    else if (v >= -32) apdk_byte(w, (unsigned char)(apdk_u64)v);
    else if (v >= -128) apdk_be_put(w, 0xd0, (apdk_u64)v, 1);
    else if (v >= -32768) apdk_be_put(w, 0xd1, (apdk_u64)v, 2);
    else if (v >= -2147483648ll) apdk_be_put(w, 0xd2, (apdk_u64)v, 4);
    else apdk_be_put(w, 0xd3, (apdk_u64)v, 8);
    apdk_wend(w);
}

/* A double (JSON: the shortest text that reads back exactly; null for NaN
 * and infinities, as serde_json writes them). */
APDK_FN void apdk_f64_value(apdk_writer *w, double v) {
    apdk_wbegin(w, 0);
    if (apdk_format == 2) {
        apdk_u64 bits = apdk_f64_to_bits(v);
        if (((bits >> 52) & 0x7ff) == 0x7ff) apdk_put(w, "null", 4);
        else { char buf[40]; apdk_put(w, buf, apdk_format_f64(v, buf)); }
    } else {
        apdk_be_put(w, 0xcb, apdk_f64_to_bits(v), 8);
    }
    apdk_wend(w);
}

/* A float (MessagePack float 32; JSON: as a double). */
APDK_FN void apdk_f32_value(apdk_writer *w, float v) {
    if (apdk_format == 2) { apdk_f64_value(w, (double)v); return; }
    apdk_wbegin(w, 0);
    apdk_u32 bits;
    __builtin_memcpy(&bits, &v, 4);
    apdk_be_put(w, 0xca, bits, 4);
    apdk_wend(w);
}

/* Binary (JSON: an array of byte values, as serde_json writes bytes). */
APDK_FN void apdk_bin(apdk_writer *w, const void *data, apdk_u32 n) {
    if (apdk_format == 2) {
        apdk_array(w, n);
        for (apdk_u32 i = 0; i < n && w->ok; i++) apdk_u64_value(w, ((const unsigned char *)data)[i]);
        return;
    }
    apdk_wbegin(w, 0);
    if (n <= 0xff) apdk_be_put(w, 0xc4, n, 1);
    else if (n <= 0xffff) apdk_be_put(w, 0xc5, n, 2);
    else apdk_be_put(w, 0xc6, n, 4);
    apdk_put(w, data, n);
    apdk_wend(w);
}

/* A MessagePack extension value (JSON: an error). */
APDK_FN void apdk_ext(apdk_writer *w, int type, const void *data, apdk_u32 n) {
    if (apdk_format == 2) { apdk_werr(w, "JSON has no extension types"); return; }
    apdk_wbegin(w, 0);
    if (n == 1 || n == 2 || n == 4 || n == 8 || n == 16) {
        unsigned char tag = n == 1 ? 0xd4 : n == 2 ? 0xd5 : n == 4 ? 0xd6 : n == 8 ? 0xd7 : 0xd8;
        apdk_byte(w, tag);
    } else if (n <= 0xff) apdk_be_put(w, 0xc7, n, 1);
    else if (n <= 0xffff) apdk_be_put(w, 0xc8, n, 2);
    else apdk_be_put(w, 0xc9, n, 4);
    apdk_byte(w, (unsigned char)type);
    apdk_put(w, data, n);
    apdk_wend(w);
}

/* Checks the output is complete and returns it, packed, for the host (or
 * reports what was wrong as a guest error). */
APDK_FN long long apdk_finish(apdk_writer *w) {
    if (w->ok && w->depth > 0) apdk_werr(w, "the output ends with values missing from an array or map");
    if (w->ok && !w->top_done) apdk_werr(w, "the output has no value");
    if (!w->ok) return apdk_fail(w->err);
    return apdk_pack(w->buf, w->len);
}

#endif /* ANYWASM_PDK_H */
