#!/usr/bin/env node
// Marks a module as an anywasm plugin: appends the `anywasm.plugin` custom
// section (docs/ABI.md §1), which AssemblyScript cannot write itself.
//
//   anywasm-plugin-section plugin.wasm '{"abi":1,"name":"x","version":"1.0.0","formats":["json"]}'
//
// The JSON is checked (an object with `"abi": 1`); a module that already
// has the section is refused rather than given two.
"use strict";
const fs = require("fs");

function leb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return Buffer.from(out);
}

function sections(wasm) {
  const found = [];
  let i = 8;
  while (i < wasm.length) {
    const id = wasm[i++];
    let size = 0, shift = 0, b;
    do {
      b = wasm[i++];
      size |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    let name = null;
    if (id === 0) {
      let len = 0, s = 0, j = i;
      do {
        b = wasm[j++];
        len |= (b & 0x7f) << s;
        s += 7;
      } while (b & 0x80);
      name = wasm.slice(j, j + len).toString("utf8");
    }
    found.push({ id, name });
    i += size;
  }
  return found;
}

const [file, json] = process.argv.slice(2);
if (!file || !json) {
  console.error("usage: anywasm-plugin-section PLUGIN.wasm METADATA_JSON");
  process.exit(2);
}
const meta = JSON.parse(json);
if (typeof meta !== "object" || meta === null || meta.abi !== 1) {
  console.error('the metadata must be a JSON object with "abi": 1');
  process.exit(2);
}
const wasm = fs.readFileSync(file);
if (wasm.slice(0, 4).toString("binary") !== "\0asm") {
  console.error(`${file} is not a WebAssembly module`);
  process.exit(2);
}
if (sections(wasm).some((s) => s.id === 0 && s.name === "anywasm.plugin")) {
  console.error(`${file} already has an anywasm.plugin section`);
  process.exit(2);
}
const name = Buffer.from("anywasm.plugin", "utf8");
const payload = Buffer.concat([leb(name.length), name, Buffer.from(JSON.stringify(meta), "utf8")]);
fs.writeFileSync(file, Buffer.concat([wasm, Buffer.from([0]), leb(payload.length), payload]));
