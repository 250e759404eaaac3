/*
 * Test plugin for the C PDK's data model (plugin-runtime/tests/pdk.rs):
 *
 * transcode(any value) -> the same value: read with apdk_next, written back
 *   with the writer, so every MessagePack and JSON type goes through both.
 * greet(string) -> "Hello, <string>!"
 * lookup({name, count, delta, ratio, flag}) -> the same fields, read with
 *   the apdk_get_* helpers.
 *
 * Rebuild with plugins/build.sh.
 */
#include "../pdk/c/anywasm_pdk.h"

ANYWASM_PLUGIN("{\"abi\":1,\"name\":\"pdk-values-c\",\"version\":\"1.0.0\",\"formats\":[\"msgpack\",\"json\"]}");

static int copy(apdk_reader *r, apdk_writer *w) {
    apdk_value v;
    switch (apdk_next(r, &v)) {
    case APDK_NIL: apdk_nil(w); return 1;
    case APDK_BOOL: apdk_bool(w, v.boolean); return 1;
    case APDK_INT: apdk_i64_value(w, v.i); return 1;
    case APDK_UINT: apdk_u64_value(w, v.u); return 1;
    case APDK_FLOAT:
        if (v.is_f32) apdk_f32_value(w, (float)v.f);
        else apdk_f64_value(w, v.f);
        return 1;
    case APDK_STR: apdk_strn(w, v.ptr, v.len); return 1;
    case APDK_BIN: apdk_bin(w, v.ptr, v.len); return 1;
    case APDK_EXT: apdk_ext(w, v.ext_type, v.ptr, v.len); return 1;
    case APDK_ARRAY:
        apdk_array(w, v.count);
        for (apdk_u32 i = 0; i < v.count; i++) if (!copy(r, w)) return 0;
        return 1;
    case APDK_MAP:
        apdk_map(w, v.count);
        for (apdk_u32 i = 0; i < v.count; i++) if (!copy(r, w) || !copy(r, w)) return 0;
        return 1;
    default: return 0;
    }
}

ANYWASM_FUNCTION(transcode) {
    apdk_reader r = apdk_input(ptr, len);
    apdk_writer *w = apdk_output();
    if (!copy(&r, w) || !apdk_done(&r)) return apdk_fail(r.err);
    return apdk_finish(w);
}

ANYWASM_FUNCTION(greet) {
    apdk_reader r = apdk_input(ptr, len);
    apdk_value v;
    if (apdk_next(&r, &v) != APDK_STR) return apdk_fail("greet expects a string");
    apdk_writer *w = apdk_output();
    char *buf = (char *)apdk_alloc(v.len + 8);
    if (!buf) return apdk_fail("out of memory");
    __builtin_memcpy(buf, "Hello, ", 7);
    __builtin_memcpy(buf + 7, v.ptr, v.len);
    buf[7 + v.len] = '!';
    apdk_strn(w, buf, v.len + 8);
    return apdk_finish(w);
}

ANYWASM_FUNCTION(lookup) {
    apdk_reader r = apdk_input(ptr, len);
    apdk_str name = apdk_get_str(&r, "name");
    apdk_u64 count = apdk_get_u64(&r, "count");
    apdk_i64 delta = apdk_get_i64(&r, "delta");
    double ratio = apdk_get_f64(&r, "ratio");
    int flag = apdk_get_bool(&r, "flag");
    if (!r.ok) return apdk_fail("lookup expects {name, count, delta, ratio, flag}");
    apdk_writer *w = apdk_output();
    apdk_map(w, 5);
    apdk_key(w, "name"); apdk_strn(w, name.ptr, name.len);
    apdk_key(w, "count"); apdk_u64_value(w, count);
    apdk_key(w, "delta"); apdk_i64_value(w, delta);
    apdk_key(w, "ratio"); apdk_f64_value(w, ratio);
    apdk_key(w, "flag"); apdk_bool(w, flag);
    return apdk_finish(w);
}

/* Declares two values and writes one: the writer reports it. */
ANYWASM_FUNCTION(short_output) {
    (void)ptr; (void)len;
    apdk_writer *w = apdk_output();
    apdk_array(w, 2);
    apdk_nil(w);
    return apdk_finish(w);
}
