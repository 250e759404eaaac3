/*
 * Test plugin for WASI in plugins (plugin-runtime/tests/wasi.rs): C with
 * wasi-libc, built as a reactor. Its manifest must grant WASI.
 *
 * read_file(path) -> the file's text, or the guest error strerror(errno)
 * write_file([path, text]) -> bytes written, or strerror(errno)
 * env(name) -> the variable's value, or nil
 * say(text) -> nil; prints text to stdout and "warning: text" to stderr
 * nap(milliseconds) -> nil; sleeps (poll_oneoff)
 * quit(status) -> exits the instance (proc_exit)
 *
 * Rebuild with plugins/build.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../pdk/c/anywasm_pdk.h"

ANYWASM_PLUGIN("{\"abi\":1,\"name\":\"wasi-c\",\"version\":\"1.0.0\",\"formats\":[\"msgpack\",\"json\"]}");


/* A NUL-terminated copy of the input string, or 0. */
static char *input_string(apdk_reader *r) {
    apdk_value v;
    if (apdk_next(r, &v) != APDK_STR) return 0;
    char *s = malloc(v.len + 1);
    if (!s) return 0;
    memcpy(s, v.ptr, v.len);
    s[v.len] = 0;
    return s;
}

static long long fail_errno(void) { return apdk_fail(strerror(errno)); }

ANYWASM_FUNCTION(read_file) {
    apdk_reader r = apdk_input(ptr, len);
    char *path = input_string(&r);
    if (!path) return apdk_fail("read_file expects a path");
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f) return fail_errno();
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) { cap *= 2; buf = realloc(buf, cap); }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) { free(buf); return apdk_fail("read failed"); }
    apdk_writer *w = apdk_output();
    apdk_strn(w, buf, (apdk_u32)n);
    free(buf);
    return apdk_finish(w);
}

ANYWASM_FUNCTION(write_file) {
    apdk_reader r = apdk_input(ptr, len);
    apdk_value v;
    if (apdk_next(&r, &v) != APDK_ARRAY || v.count != 2) return apdk_fail("write_file expects [path, text]");
    char *path = input_string(&r);
    if (!path || apdk_next(&r, &v) != APDK_STR) return apdk_fail("write_file expects [path, text]");
    FILE *f = fopen(path, "wb");
    free(path);
    if (!f) return fail_errno();
    size_t n = fwrite(v.ptr, 1, v.len, f);
    if (fclose(f) != 0) return fail_errno();
    apdk_writer *w = apdk_output();
    apdk_u64_value(w, n);
    return apdk_finish(w);
}

ANYWASM_FUNCTION(env) {
    apdk_reader r = apdk_input(ptr, len);
    char *name = input_string(&r);
    if (!name) return apdk_fail("env expects a name");
    const char *value = getenv(name);
    free(name);
    apdk_writer *w = apdk_output();
    if (value) apdk_strn(w, value, (apdk_u32)strlen(value));
    else apdk_nil(w);
    return apdk_finish(w);
}

ANYWASM_FUNCTION(say) {
    apdk_reader r = apdk_input(ptr, len);
    char *text = input_string(&r);
    if (!text) return apdk_fail("say expects a text");
    printf("%s\n", text);
    fprintf(stderr, "warning: %s\n", text);
    fflush(stdout);
    free(text);
    apdk_writer *w = apdk_output();
    apdk_nil(w);
    return apdk_finish(w);
}

ANYWASM_FUNCTION(nap) {
    apdk_reader r = apdk_input(ptr, len);
    apdk_value v;
    if (apdk_next(&r, &v) != APDK_UINT) return apdk_fail("nap expects milliseconds");
    struct timespec ts = {(time_t)(v.u / 1000), (long)(v.u % 1000) * 1000000L};
    nanosleep(&ts, 0);
    apdk_writer *w = apdk_output();
    apdk_nil(w);
    return apdk_finish(w);
}

ANYWASM_FUNCTION(quit) {
    apdk_reader r = apdk_input(ptr, len);
    apdk_value v;
    if (apdk_next(&r, &v) != APDK_UINT) return apdk_fail("quit expects a status");
    exit((int)v.u);
}
