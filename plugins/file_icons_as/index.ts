// Example plugin in AssemblyScript: picks an icon for a file event, like
// plugins/file_icons.c.
//
// handle_event({kind, path, size}) -> {icon, priority}
//   icon: the `theme` configuration value (if any) + "/" + a name from the
//         file's extension; priority: lower for big files, computed with the
//         host's numeric `calc` built-in.
// initialize: counts instances; stats() -> {calls, initialized}
// echo_via_host(bytes): the same bytes, through the host's `echo` built-in.
//
// Rebuild with plugins/build.sh (npm run build here).
import { JSON } from "json-as";
import {
  CalcOp,
  Input,
  anywasm_alloc,
  anywasm_set_format,
  calc,
  config,
  echo,
  fail,
  output,
  outputBytes,
} from "@anywasm/pdk";
// The ABI's own exports.
export { anywasm_alloc, anywasm_set_format };

@json
class Event {
  kind: string = "";
  path: string = "";
  size: u64 = 0;
}

@json
class Decision {
  icon: string = "";
  priority: u32 = 0;
}

@json
class Counts {
  calls: u64 = 0;
  initialized: u64 = 0;
}

let calls: u64 = 0;
let initialized: u64 = 0;

function iconFor(path: string): string {
  if (path.endsWith(".rs")) return "rust";
  if (path.endsWith(".c") || path.endsWith(".h")) return "c";
  if (path.endsWith(".md")) return "markdown";
  if (path.endsWith(".wasm")) return "webassembly";
  return "file";
}

export function initialize(ptr: i32, len: i32): i64 {
  initialized++;
  return 0;
}

export function handle_event(ptr: i32, len: i32): i64 {
  const text = Input.string(ptr, len);
  // json-as aborts (a trap) on malformed JSON; check the shape first so
  // that a wrong input is a guest error, as in the C plugin.
  if (!text.startsWith("{") || !text.includes('"path"') || !text.includes('"size"')) {
    return fail("handle_event expects {kind, path, size}");
  }
  const event = JSON.parse<Event>(text);
  if (event.path.length == 0) return fail("empty path");
  calls++;
  const icon = iconFor(event.path);
  const theme = config("theme");
  // priority = 10 - (size / 1_000_000), at least 1; arithmetic by the host
  const megabytes = calc(<i32>(event.size & 0x7fffffff), 1000000, CalcOp.Div);
  let priority: i32 = megabytes >= 9 ? 1 : calc(10, megabytes, CalcOp.Sub);
  if (event.kind == "delete") priority = 0;
  const d = new Decision();
  d.icon = theme != null && theme.length > 0 ? theme + "/" + icon : icon;
  d.priority = <u32>priority;
  return output(JSON.stringify(d));
}

export function stats(ptr: i32, len: i32): i64 {
  const c = new Counts();
  c.calls = calls;
  c.initialized = initialized;
  return output(JSON.stringify(c));
}

// Raw bytes in, the same bytes out through the host's echo built-in.
export function echo_via_host(ptr: i32, len: i32): i64 {
  const r = echo(Input.bytes(ptr, len));
  if (!r.ok) return fail("echo failed");
  return outputBytes(r.bytes);
}
