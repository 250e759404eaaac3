// The package entry AssemblyScript resolves for `@anywasm/pdk`.
export * from "./assembly/index";
