//! Tables.

use anywasm_core::{BackendTable, Error, Result, TableType, Val};

use crate::Ctx;
use crate::CtxMut;
use crate::convert::{map_err, ref_from_wi, ref_to_wi, table_type_from_wi, table_type_to_wi};
use crate::{NAME, Wasmi};

impl BackendTable for Wasmi {
    fn table_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: TableType,
        init: Val<Self>,
    ) -> Result<wasmi::Table> {
        let wi = table_type_to_wi(&ty)?;
        let init = ref_to_wi(&init)?;
        wasmi::Table::new(ctx.ctx_mut(), wi, init).map_err(|e| map_err(&e))
    }

    fn table_ty<T: Send + 'static>(ctx: Ctx<'_, T>, table: &wasmi::Table) -> TableType {
        let mut ty = table_type_from_wi(&table.ty(ctx.ctx()));
        ty.minimum = table.size(ctx.ctx());
        ty
    }

    fn table_get<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        table: &wasmi::Table,
        index: u64,
    ) -> Option<Val<Self>> {
        let store = ctx.data().shared.id();
        table.get(ctx.ctx(), index).map(|r| ref_from_wi(&r, store))
    }

    fn table_set<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        table: &wasmi::Table,
        index: u64,
        value: Val<Self>,
    ) -> Result<()> {
        let r = ref_to_wi(&value)?;
        table
            .set(ctx.ctx_mut(), index, r)
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    fn table_grow<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        table: &wasmi::Table,
        delta: u64,
        init: Val<Self>,
    ) -> Result<u64> {
        let r = ref_to_wi(&init)?;
        table
            .grow(ctx.ctx_mut(), delta, r)
            .map_err(|e| Error::Backend {
                backend: NAME,
                message: e.to_string(),
            })
    }
}
