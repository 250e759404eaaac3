// The anywasm plugin ABI, version 1 (docs/ABI.md), for AssemblyScript.
//
// A plugin's entry file re-exports the ABI's own exports and defines plugin
// functions with the ABI's signature:
//
//   export { anywasm_alloc, anywasm_set_format } from "@anywasm/pdk";
//   import { Input, output, fail } from "@anywasm/pdk";
//   export function greet(ptr: i32, len: i32): i64 {
//     const name = Input.string(ptr, len);
//     if (name.length == 0) return fail("empty name");
//     return output("Hello, " + name + "!");
//   }
//
// and is built with `--use abort=@anywasm/pdk/assembly/index/abort`, then
// marked as a plugin with `anywasm-plugin-section` (bin/add-section.js),
// which adds the `anywasm.plugin` custom section AssemblyScript cannot
// write itself. Structured input and output are JSON (the `json` format):
// the `json-as` package's `@json` classes and `JSON.parse`/`JSON.stringify`
// do that well; this PDK carries no MessagePack codec, so a plugin built
// with it declares `"formats": ["json"]` (or `"raw"`).

// ---- host imports (module `anywasm`) ----------------------------------

@external("anywasm", "error")
declare function host_error(ptr: usize, len: i32): void;
@external("anywasm", "log")
declare function host_log(level: i32, ptr: usize, len: i32): void;
@external("anywasm", "config_get")
declare function host_config_get(ptr: usize, len: i32): i64;
@external("anywasm", "take_result")
declare function host_take_result(ptr: usize): void;
@external("anywasm", "kv_set")
declare function host_kv_set(kptr: usize, klen: i32, vptr: usize, vlen: i32): i32;
@external("anywasm", "kv_get")
declare function host_kv_get(ptr: usize, len: i32): i64;
@external("anywasm", "kv_delete")
declare function host_kv_delete(ptr: usize, len: i32): i32;
// Built-ins, usable only when the manifest grants them (`anywasm.echo`,
// `anywasm.calc`); an import the plugin never calls is not emitted.
@external("anywasm", "echo")
declare function host_echo(ptr: usize, len: i32): i64;
@external("anywasm", "calc")
declare function host_calc(a: i32, b: i32, op: i32): i32;

// ---- the ABI's exports --------------------------------------------------

/** The serialisation format the host uses: 0 raw, 1 MessagePack, 2 JSON. */
export let format: i32 = 2;
// The buffer the host writes the next input into, and the last output:
// both kept reachable so the collector leaves them alone while the host
// uses them.
let inputBuffer = new ArrayBuffer(0);
let lastOutput = new ArrayBuffer(0);

/** `anywasm_alloc(len) -> ptr`: room for the next input. */
export function anywasm_alloc(len: i32): usize {
  if (len < 0) return 0;
  if (inputBuffer.byteLength < len) inputBuffer = new ArrayBuffer(len);
  return changetype<usize>(inputBuffer);
}

/** `anywasm_set_format(format)`: called once per instance. */
export function anywasm_set_format(f: i32): void {
  format = f;
}

/** AssemblyScript's `abort`, as a guest error and a trap. */
export function abort(
  message: string | null,
  fileName: string | null,
  line: u32,
  column: u32,
): void {
  let text = message != null ? message : "abort";
  if (fileName != null) text += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  const bytes = String.UTF8.encode(text);
  host_error(changetype<usize>(bytes), bytes.byteLength);
  unreachable();
}

// ---- inputs and outputs -------------------------------------------------

export class Input {
  /** The input bytes of a plugin function called with `(ptr, len)`. */
  static bytes(ptr: i32, len: i32): Uint8Array {
    const out = new Uint8Array(len);
    memory.copy(out.dataStart, <usize>ptr, <usize>len);
    return out;
  }

  /** The input as UTF-8 text (JSON in the `json` format). */
  static string(ptr: i32, len: i32): string {
    return String.UTF8.decodeUnsafe(<usize>ptr, <usize>len);
  }
}

/** Packs an output range the way the ABI returns it. */
function pack(ptr: usize, len: i32): i64 {
  return (<i64>ptr << 32) | <i64>(<u32>len);
}

/** Returns `bytes` as the function's output. */
export function outputBytes(bytes: Uint8Array): i64 {
  lastOutput = bytes.buffer;
  return pack(bytes.dataStart, bytes.byteLength);
}

/** Returns a string (UTF-8; JSON text in the `json` format) as the output. */
export function output(text: string): i64 {
  lastOutput = String.UTF8.encode(text);
  return pack(changetype<usize>(lastOutput), lastOutput.byteLength);
}

/** Fails the call with `message` (the host's `PluginError::Guest`). */
export function fail(message: string): i64 {
  const bytes = String.UTF8.encode(message);
  host_error(changetype<usize>(bytes), bytes.byteLength);
  return 0;
}

// ---- host services -------------------------------------------------------

export enum LogLevel {
  Error = 0,
  Warn = 1,
  Info = 2,
  Debug = 3,
  Trace = 4,
}

/** A line for the host's log. */
export function log(level: LogLevel, message: string): void {
  const bytes = String.UTF8.encode(message);
  host_log(level, changetype<usize>(bytes), bytes.byteLength);
}

/** A pending result: status 0 ok, 1 the host failed (bytes: a message), 2 not found. */
export class Pending {
  constructor(
    public status: i32,
    public bytes: Uint8Array,
  ) {}

  get ok(): bool {
    return this.status == 0;
  }

  text(): string {
    return String.UTF8.decode(this.bytes.buffer);
  }
}

/** Takes the result a host function left pending (`(status << 32) | len`). */
export function take(packed: i64): Pending {
  const status = <i32>(packed >> 32);
  const len = <i32>(<u32>(packed & 0xffffffff));
  const bytes = new Uint8Array(len);
  host_take_result(bytes.dataStart);
  return new Pending(status, bytes);
}

/** A configuration value of the plugin's manifest, or null. */
export function config(key: string): string | null {
  const k = String.UTF8.encode(key);
  const r = take(host_config_get(changetype<usize>(k), k.byteLength));
  return r.ok ? r.text() : null;
}

/** The plugin's own key/value store (shared by its instances, kept across reloads). */
export class Kv {
  /** Stores a value; false when the store's quota would be exceeded. */
  static set(key: string, value: Uint8Array): bool {
    const k = String.UTF8.encode(key);
    return host_kv_set(changetype<usize>(k), k.byteLength, value.dataStart, value.byteLength) == 0;
  }

  /** A value, or null. */
  static get(key: string): Uint8Array | null {
    const k = String.UTF8.encode(key);
    const r = take(host_kv_get(changetype<usize>(k), k.byteLength));
    return r.ok ? r.bytes : null;
  }

  /** Deletes a value; false when there was none. */
  static delete(key: string): bool {
    const k = String.UTF8.encode(key);
    return host_kv_delete(changetype<usize>(k), k.byteLength) == 0;
  }
}

/** The `anywasm.echo` built-in (granted by the manifest): the same bytes back. */
export function echo(bytes: Uint8Array): Pending {
  return take(host_echo(bytes.dataStart, bytes.byteLength));
}

export enum CalcOp {
  Add = 0,
  Sub = 1,
  Mul = 2,
  Div = 3,
}

/** The `anywasm.calc` built-in (granted by the manifest): u32 arithmetic. */
export function calc(a: i32, b: i32, op: CalcOp): i32 {
  return host_calc(a, b, op);
}
