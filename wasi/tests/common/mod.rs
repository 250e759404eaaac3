//! A store running the WASI probe module (`anywasm_wasi::probe`), so tests
//! call WASI functions directly with arguments of their choosing.

#![allow(dead_code)]

use anywasm::{Backend, Config, Engine, Instance, Linker, Memory, Module, Store, Val};
use anywasm_wasi::{WasiConfig, WasiCtx, add_to_linker, probe};

pub struct Probe<B: Backend> {
    pub store: Store<B, WasiCtx>,
    pub instance: Instance<B>,
    pub memory: Memory<B>,
    pub pages: u32,
}

impl<B: Backend> Probe<B> {
    /// The probe with `pages` of memory, on an interruptible engine.
    pub fn new(pages: u32, config: WasiConfig) -> Self {
        let mut c = Config::new();
        c.interruptible(true);
        let engine = Engine::<B>::new(&c).unwrap();
        let module = Module::new(&engine, probe::module(pages, false)).unwrap();
        let mut store = Store::new(&engine, config.build().unwrap());
        let mut linker = Linker::<B, WasiCtx>::new();
        add_to_linker(&mut linker, |c| c).unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        Self {
            store,
            instance,
            memory,
            pages,
        }
    }

    pub fn call(&mut self, name: &str, args: &[Val<B>]) -> anywasm::Result<Vec<Val<B>>> {
        let f = self.instance.get_func(&mut self.store, name).unwrap();
        f.invoke(&mut self.store, args)
    }

    /// Calls `name` and returns its errno.
    #[track_caller]
    pub fn errno(&mut self, name: &str, args: &[Val<B>]) -> i32 {
        match self.call(name, args) {
            Ok(r) => r[0].as_i32().unwrap(),
            Err(e) => panic!("{}: {name}: {e}", B::NAME),
        }
    }

    pub fn put(&mut self, at: u32, bytes: &[u8]) {
        self.memory
            .write(&mut self.store, at.into(), bytes)
            .unwrap();
    }

    pub fn put_u32(&mut self, at: u32, v: u32) {
        self.put(at, &v.to_le_bytes());
    }

    pub fn get(&self, at: u32, len: usize) -> Vec<u8> {
        self.memory.read_vec(&self.store, at.into(), len).unwrap()
    }

    pub fn get_u32(&self, at: u32) -> u32 {
        u32::from_le_bytes(self.get(at, 4).try_into().unwrap())
    }

    pub fn get_u64(&self, at: u32) -> u64 {
        u64::from_le_bytes(self.get(at, 8).try_into().unwrap())
    }
}

pub fn i<B: Backend>(v: u32) -> Val<B> {
    Val::I32(v as i32)
}

pub fn l<B: Backend>(v: u64) -> Val<B> {
    Val::I64(v as i64)
}
