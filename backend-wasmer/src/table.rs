//! Tables.

use anywasm_core::{BackendTable, Error, Result, TableType, Val};
use wasmer::AsStoreMut;

use crate::Ctx;
use crate::CtxMut;
use crate::convert::{map_runtime_err, table_type_from_wr, table_type_to_wr, val_from_wr};
use crate::func::{guard_panic, val_to_wr_in};
use crate::{NAME, Wasmer, limits};

/// Table indices below the table's size, which the layer has checked;
/// wasmer's tables hold at most 2^32 elements.
fn index(i: u64) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl BackendTable for Wasmer {
    fn table_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: TableType,
        init: Val<Self>,
    ) -> Result<wasmer::Table> {
        let wr = table_type_to_wr(&ty)?;
        let shared = ctx.shared().clone();
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let init = val_to_wr_in(data, &mut store, &init)?;
        guard_panic(|| limits::creating_in(&shared, || wasmer::Table::new(&mut store, wr, init)))?
            .map_err(map_runtime_err)
    }

    fn table_ty<T: Send + 'static>(ctx: Ctx<'_, T>, table: &wasmer::Table) -> TableType {
        let store = ctx.store_ref();
        let mut ty = table_type_from_wr(&table.ty(&store));
        ty.minimum = table.size(&store) as u64;
        ty
    }

    fn table_get<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        table: &wasmer::Table,
        i: u64,
    ) -> Option<Val<Self>> {
        let id = ctx.shared().id();
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        table.get(&mut store, index(i)).map(|v| val_from_wr(&v, id))
    }

    fn table_set<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        table: &wasmer::Table,
        i: u64,
        value: Val<Self>,
    ) -> Result<()> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let value = val_to_wr_in(data, &mut store, &value)?;
        guard_panic(|| table.set(&mut store, index(i), value))?
            .map_err(|e| Error::InvalidArgument(e.message()))
    }

    fn table_grow<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        table: &wasmer::Table,
        delta: u64,
        init: Val<Self>,
    ) -> Result<u64> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let init = val_to_wr_in(data, &mut store, &init)?;
        guard_panic(|| table.grow(&mut store, index(delta), init))?
            .map(u64::from)
            .map_err(|e| Error::Backend {
                backend: NAME,
                message: e.message(),
            })
    }
}
