/*
 * Example plugin in C: picks an icon for a file event.
 *
 * handle_event({kind, path, size}) -> {icon, priority}
 *   icon: the `theme` configuration value (if any) + "/" + a name from the
 *         file's extension; priority: lower for big files, computed with the
 *         host's numeric `calc` built-in.
 * initialize: counts instances; stats() -> {calls, initialized}
 * fail_on(path): reports a guest error when the path is empty.
 *
 * Rebuild with plugins/build.sh.
 */
#include "../pdk/c/anywasm_pdk.h"

ANYWASM_PLUGIN("{\"abi\":1,\"name\":\"file-icons\",\"version\":\"1.0.0\",\"formats\":[\"msgpack\",\"json\"]}");

static apdk_u64 calls = 0;
static apdk_u64 initialized = 0;

static int ends_with(apdk_str s, const char *suffix) {
    apdk_u32 n = apdk_strlen(suffix);
    return s.len >= n && apdk_memeq(s.ptr + s.len - n, suffix, n);
}

static const char *icon_for(apdk_str path) {
    if (ends_with(path, ".rs")) return "rust";
    if (ends_with(path, ".c") || ends_with(path, ".h")) return "c";
    if (ends_with(path, ".md")) return "markdown";
    if (ends_with(path, ".wasm")) return "webassembly";
    return "file";
}

ANYWASM_FUNCTION(initialize) {
    (void)ptr; (void)len;
    initialized++;
    return 0;
}

ANYWASM_FUNCTION(handle_event) {
    apdk_reader in = apdk_input(ptr, len);
    apdk_str kind = apdk_get_str(&in, "kind");
    apdk_str path = apdk_get_str(&in, "path");
    apdk_u64 size = apdk_get_u64(&in, "size");
    if (!in.ok) return apdk_fail("handle_event expects {kind, path, size}");
    if (path.len == 0) return apdk_fail("empty path");
    calls++;

    const char *icon = icon_for(path);
    apdk_str theme = apdk_config("theme");
    /* priority = 10 - (size / 1_000_000), at least 1; arithmetic by the host */
    int megabytes = anywasm_calc((int)(size & 0x7fffffff), 1000000, 3);
    int priority = megabytes >= 9 ? 1 : anywasm_calc(10, megabytes, 1);
    if (kind.len == 6 && apdk_memeq(kind.ptr, "delete", 6)) priority = 0;

    apdk_writer *w = apdk_output();
    apdk_map(w, 2);
    apdk_key(w, "icon");
    if (theme.len) {
        char buf[96];
        apdk_u32 n = 0, il = apdk_strlen(icon);
        for (apdk_u32 i = 0; i < theme.len && n < 64; i++) buf[n++] = theme.ptr[i];
        buf[n++] = '/';
        for (apdk_u32 i = 0; i < il && n < sizeof buf; i++) buf[n++] = icon[i];
        apdk_strn(w, buf, n);
    } else {
        apdk_strn(w, icon, apdk_strlen(icon));
    }
    apdk_key(w, "priority");
    apdk_u64_value(w, (apdk_u64)priority);
    return apdk_finish(w);
}

ANYWASM_FUNCTION(stats) {
    (void)ptr; (void)len;
    apdk_writer *w = apdk_output();
    apdk_map(w, 2);
    apdk_key(w, "calls");
    apdk_u64_value(w, calls);
    apdk_key(w, "initialized");
    apdk_u64_value(w, initialized);
    return apdk_finish(w);
}

/* Raw bytes in, the same bytes out through the host's echo built-in. */
ANYWASM_FUNCTION(echo_via_host) {
    int status;
    apdk_str out = apdk_take(anywasm_echo((const void *)ptr, len), &status);
    if (status != 0) return apdk_fail("echo failed");
    return apdk_pack(out.ptr, out.len);
}
