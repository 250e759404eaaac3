//! The layout of standalone modules in one memory, computed without an
//! engine (what the npm `wasm-share-memory` package's `combine` reports).

use std::ops::Range;

use crate::Error;
use crate::dylink::Dylink;
use crate::loader::LinkerConfig;

/// Where one module goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLayout {
    /// Its `__memory_base`.
    pub memory_base: u32,
    /// Bytes of data it needs there.
    pub memory_size: u32,
    /// Its `__table_base`.
    pub table_base: u32,
    /// Table slots it needs there.
    pub table_size: u32,
}

/// Modules laid out one after another, a shared heap after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// One entry per module, in the order given.
    pub modules: Vec<ModuleLayout>,
    /// The shared heap.
    pub heap: Range<u32>,
    /// 64 KiB pages the memory needs to hold all of it.
    pub pages_needed: u32,
    /// Table slots needed (slot 0 stays null).
    pub table_size: u32,
}

/// Lays out `modules` (each with a `dylink.0` section) in one memory after
/// the stack that `config` reserves, with `heap_bytes` of shared heap after
/// them — the same layout [`DynamicLinker::load_shared`] uses on a fresh
/// linker with the same configuration.
///
/// [`DynamicLinker::load_shared`]: crate::DynamicLinker::load_shared
///
/// ```
/// let lib = wat::parse_str(r#"(module (@dylink.0 (mem-info (memory 100 4))))"#).unwrap();
/// let layout = anywasm_linker::combine(&anywasm_linker::LinkerConfig::new(), &[&lib, &lib], 1 << 20).unwrap();
/// let [a, b] = &layout.modules[..] else { panic!() };
/// assert_eq!(b.memory_base, a.memory_base + 112); // 100 bytes, aligned to 16
/// assert_eq!(layout.heap.end - layout.heap.start, 1 << 20);
/// assert!(layout.pages_needed >= 17);
/// ```
pub fn combine(config: &LinkerConfig, modules: &[&[u8]], heap_bytes: u32) -> Result<Layout, Error> {
    let mut mem_end = config.first_address();
    let mut table_end = 1u64;
    let mut out = Vec::with_capacity(modules.len());
    for (i, bytes) in modules.iter().enumerate() {
        let d = Dylink::parse(&format!("module {i}"), bytes)?;
        mem_end = align_up(mem_end, 1u64 << d.memory_align_log2.min(16));
        table_end = align_up(table_end, 1u64 << d.table_align_log2.min(16));
        out.push(ModuleLayout {
            memory_base: to_u32(mem_end)?,
            memory_size: d.memory_size,
            table_base: to_u32(table_end)?,
            table_size: d.table_size,
        });
        mem_end += u64::from(d.memory_size);
        table_end += u64::from(d.table_size);
    }
    let heap_start = align_up(mem_end, 16);
    let heap_end = heap_start + u64::from(heap_bytes);
    Ok(Layout {
        modules: out,
        heap: to_u32(heap_start)?..to_u32(heap_end)?,
        pages_needed: to_u32(heap_end.div_ceil(65536))?,
        table_size: to_u32(table_end)?,
    })
}

fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

fn to_u32(v: u64) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::Limit {
        what: "bytes of address space",
        needed: v,
        limit: u32::MAX.into(),
    })
}
