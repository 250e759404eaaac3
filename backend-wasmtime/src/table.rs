//! Tables.

use anywasm_core::{BackendTable, Result, TableType, Val};

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmtime;
use crate::convert::{
    backend_err, map_err, ref_from_wt, ref_to_wt, table_type_from_wt, table_type_to_wt,
};

impl BackendTable for Wasmtime {
    fn table_new<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        ty: TableType,
        init: Val<Self>,
    ) -> Result<wasmtime::Table> {
        let wt = table_type_to_wt(&ty)?;
        let init = ref_to_wt(&mut ctx, &init)?;
        wasmtime::Table::new(ctx, wt, init).map_err(map_err)
    }

    fn table_ty<T: Send + 'static>(ctx: Ctx<'_, T>, table: &wasmtime::Table) -> TableType {
        let mut ty = table_type_from_wt(&table.ty(&ctx));
        ty.minimum = table.size(&ctx);
        ty
    }

    fn table_get<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        table: &wasmtime::Table,
        index: u64,
    ) -> Option<Val<Self>> {
        let store = ctx.data().shared.id();
        let r = table.get(&mut ctx, index)?;
        Some(ref_from_wt(&mut ctx, r, store))
    }

    fn table_set<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        table: &wasmtime::Table,
        index: u64,
        value: Val<Self>,
    ) -> Result<()> {
        let r = ref_to_wt(&mut ctx, &value)?;
        table.set(&mut ctx, index, r).map_err(map_err)
    }

    fn table_grow<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        table: &wasmtime::Table,
        delta: u64,
        init: Val<Self>,
    ) -> Result<u64> {
        let r = ref_to_wt(&mut ctx, &init)?;
        table.grow(&mut ctx, delta, r).map_err(backend_err)
    }
}
