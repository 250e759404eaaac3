//! Calls: typed and dynamic, all number types, multiple values, signatures.

use anywasm_core::{Backend, Config, Error, HostSig, Linker, SigOf, Store, TypedSig, V128, Val};

use super::{call, engine, instantiate, module};
use crate::fixtures::ARITH;

/// `i32` arithmetic, typed and dynamic, with wrap-around.
pub fn arithmetic_i32<B: Backend>()
where
    SigOf<(i32, i32), i32>: TypedSig<B, Params = (i32, i32), Results = (i32,)>,
{
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, ARITH, ());
    let add = inst
        .get_typed_func::<(i32, i32), i32>(&mut store, "i32_add")
        .unwrap();
    assert_eq!(add.call(&mut store, (2, 3)).unwrap(), 5);
    assert_eq!(add.call(&mut store, (i32::MAX, 1)).unwrap(), i32::MIN);
    let cases: [(&str, i32, i32, i32); 5] = [
        ("i32_sub", 3, 5, -2),
        ("i32_mul", -7, 6, -42),
        ("i32_div_s", -7, 2, -3),
        ("i32_rem_u", -1, 10, 5),
        ("i32_rotl", 0x8000_0001u32 as i32, 1, 3),
    ];
    for (name, a, b, want) in cases {
        let f = inst
            .get_typed_func::<(i32, i32), i32>(&mut store, name)
            .unwrap();
        assert_eq!(
            f.call(&mut store, (a, b)).unwrap(),
            want,
            "{}: typed {name}",
            B::NAME
        );
        let got = call(&mut store, &inst, name, &[Val::I32(a), Val::I32(b)]).unwrap();
        assert_eq!(got[0].as_i32(), Some(want), "{}: dynamic {name}", B::NAME);
    }
}

/// `i64` arithmetic, including unsigned parameters through `u64`.
pub fn arithmetic_i64<B: Backend>()
where
    SigOf<(i64, i64), i64>: TypedSig<B, Params = (i64, i64), Results = (i64,)>,
    SigOf<(u64, u64), u64>: TypedSig<B, Params = (u64, u64), Results = (u64,)>,
{
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, ARITH, ());
    let add = inst
        .get_typed_func::<(i64, i64), i64>(&mut store, "i64_add")
        .unwrap();
    assert_eq!(add.call(&mut store, (1 << 40, 1 << 41)).unwrap(), 3 << 40);
    let mul = inst
        .get_typed_func::<(i64, i64), i64>(&mut store, "i64_mul")
        .unwrap();
    assert_eq!(
        mul.call(&mut store, (-3, 1 << 62)).unwrap(),
        -3i64.wrapping_mul(1 << 62)
    );
    let div = inst
        .get_typed_func::<(u64, u64), u64>(&mut store, "i64_div_u")
        .unwrap();
    assert_eq!(div.call(&mut store, (u64::MAX, 2)).unwrap(), u64::MAX / 2);
    let got = call(
        &mut store,
        &inst,
        "i64_shr_s",
        &[Val::I64(-64), Val::I64(3)],
    )
    .unwrap();
    assert_eq!(got[0].as_i64(), Some(-8));
}

/// `f32` arithmetic.
pub fn arithmetic_f32<B: Backend>()
where
    SigOf<(f32, f32), f32>: TypedSig<B, Params = (f32, f32), Results = (f32,)>,
    SigOf<f32, f32>: TypedSig<B, Params = (f32,), Results = (f32,)>,
{
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, ARITH, ());
    let add = inst
        .get_typed_func::<(f32, f32), f32>(&mut store, "f32_add")
        .unwrap();
    assert_eq!(add.call(&mut store, (1.5, 2.25)).unwrap(), 3.75);
    let mul = inst
        .get_typed_func::<(f32, f32), f32>(&mut store, "f32_mul")
        .unwrap();
    assert_eq!(mul.call(&mut store, (-2.0, 0.5)).unwrap(), -1.0);
    let div = inst
        .get_typed_func::<(f32, f32), f32>(&mut store, "f32_div")
        .unwrap();
    assert_eq!(div.call(&mut store, (1.0, 0.0)).unwrap(), f32::INFINITY);
    let sqrt = inst
        .get_typed_func::<f32, f32>(&mut store, "f32_sqrt")
        .unwrap();
    assert_eq!(sqrt.call(&mut store, 2.25).unwrap(), 1.5);
    assert!(sqrt.call(&mut store, -1.0).unwrap().is_nan());
    let got = call(
        &mut store,
        &inst,
        "f32_add",
        &[Val::f32(0.1), Val::f32(0.2)],
    )
    .unwrap();
    assert_eq!(got[0].as_f32(), Some(0.1f32 + 0.2f32));
}

/// `f64` arithmetic and an integer conversion.
pub fn arithmetic_f64<B: Backend>()
where
    SigOf<(f64, f64), f64>: TypedSig<B, Params = (f64, f64), Results = (f64,)>,
    SigOf<i32, f64>: TypedSig<B, Params = (i32,), Results = (f64,)>,
{
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, ARITH, ());
    let add = inst
        .get_typed_func::<(f64, f64), f64>(&mut store, "f64_add")
        .unwrap();
    assert_eq!(add.call(&mut store, (0.1, 0.2)).unwrap(), 0.1 + 0.2);
    let div = inst
        .get_typed_func::<(f64, f64), f64>(&mut store, "f64_div")
        .unwrap();
    assert_eq!(
        div.call(&mut store, (-1.0, 0.0)).unwrap(),
        f64::NEG_INFINITY
    );
    let min = inst
        .get_typed_func::<(f64, f64), f64>(&mut store, "f64_min")
        .unwrap();
    assert_eq!(
        min.call(&mut store, (-0.0, 0.0)).unwrap().to_bits(),
        (-0.0f64).to_bits()
    );
    let conv = inst
        .get_typed_func::<i32, f64>(&mut store, "convert")
        .unwrap();
    assert_eq!(conv.call(&mut store, -12).unwrap(), -12.0);
    let got = call(
        &mut store,
        &inst,
        "f64_mul",
        &[Val::f64(1e300), Val::f64(1e10)],
    )
    .unwrap();
    assert_eq!(got[0].as_f64(), Some(f64::INFINITY));
}

/// NaN payloads and signed zeros pass through the host unchanged, typed and dynamic.
pub fn float_bits_survive_round_trips<B: Backend>()
where
    SigOf<f32, f32>: TypedSig<B, Params = (f32,), Results = (f32,)>,
    SigOf<f64, f64>: TypedSig<B, Params = (f64,), Results = (f64,)>,
{
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, ARITH, ());
    let f32_copy = inst
        .get_typed_func::<f32, f32>(&mut store, "f32_copy")
        .unwrap();
    let f64_copy = inst
        .get_typed_func::<f64, f64>(&mut store, "f64_copy")
        .unwrap();
    for bits in [0x7fc0_0001u32, 0xffc1_2345, 0x8000_0000, 0x7f80_0000] {
        let got = f32_copy.call(&mut store, f32::from_bits(bits)).unwrap();
        assert_eq!(got.to_bits(), bits, "{}: typed f32 {bits:#x}", B::NAME);
        let got = call(&mut store, &inst, "f32_copy", &[Val::F32(bits)]).unwrap();
        assert!(
            matches!(got[0], Val::F32(b) if b == bits),
            "{}: dynamic f32 {bits:#x}",
            B::NAME
        );
    }
    for bits in [
        0x7ff8_0000_0000_0001u64,
        0xfff0_dead_beef_0001,
        0x8000_0000_0000_0000,
    ] {
        let got = f64_copy.call(&mut store, f64::from_bits(bits)).unwrap();
        assert_eq!(got.to_bits(), bits, "{}: typed f64 {bits:#x}", B::NAME);
        let got = call(&mut store, &inst, "f64_copy", &[Val::F64(bits)]).unwrap();
        assert!(
            matches!(got[0], Val::F64(b) if b == bits),
            "{}: dynamic f64 {bits:#x}",
            B::NAME
        );
    }
}

/// Several results, typed as a tuple and dynamically.
pub fn multi_value<B: Backend>()
where
    SigOf<i32, (i32, i64, f32, f64)>: TypedSig<B, Params = (i32,), Results = (i32, i64, f32, f64)>,
    SigOf<(i32, i64), (i64, i32)>: TypedSig<B, Params = (i32, i64), Results = (i64, i32)>,
    SigOf<(), ()>: TypedSig<B, Params = (), Results = ()>,
{
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, ARITH, ());
    let four = inst
        .get_typed_func::<i32, (i32, i64, f32, f64)>(&mut store, "four")
        .unwrap();
    assert_eq!(four.call(&mut store, 3).unwrap(), (3, 4, 3.5, 3.25));
    let swap = inst
        .get_typed_func::<(i32, i64), (i64, i32)>(&mut store, "swap")
        .unwrap();
    assert_eq!(swap.call(&mut store, (1, 2)).unwrap(), (2, 1));
    let nothing = inst
        .get_typed_func::<(), ()>(&mut store, "nothing")
        .unwrap();
    nothing.call(&mut store, ()).unwrap();
    let got = call(&mut store, &inst, "four", &[Val::I32(-1)]).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].as_i32(), Some(-1));
    assert_eq!(got[1].as_i64(), Some(0));
    assert_eq!(got[2].as_f32(), Some(-0.5));
    assert_eq!(got[3].as_f64(), Some(-0.75));
}

/// Eight parameters through the typed path.
pub fn many_params<B: Backend>()
where
    SigOf<(i32, i32, i32, i32, i32, i32, i32, i32), i32>:
        TypedSig<B, Params = (i32, i32, i32, i32, i32, i32, i32, i32), Results = (i32,)>,
{
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, ARITH, ());
    let many = inst
        .get_typed_func::<(i32, i32, i32, i32, i32, i32, i32, i32), i32>(&mut store, "many")
        .unwrap();
    assert_eq!(many.call(&mut store, (1, 2, 3, 4, 5, 6, 7, 8)).unwrap(), 36);
}

/// Asking for the wrong signature, a missing export, or calling with
/// wrong arguments are errors that say what was wrong.
pub fn wrong_signatures_are_errors<B: Backend>()
where
    SigOf<i32, i32>: TypedSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(i32, i32), i64>: TypedSig<B, Params = (i32, i32), Results = (i64,)>,
{
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, ARITH, ());
    match inst.get_typed_func::<i32, i32>(&mut store, "i32_add") {
        Err(Error::TypeMismatch {
            context,
            expected,
            found,
        }) => {
            assert!(context.contains("i32_add"), "{context}");
            assert_eq!(expected, "(func (param i32) (result i32))");
            assert_eq!(found, "(func (param i32 i32) (result i32))");
        }
        other => panic!("{}: expected a type mismatch, got {other:?}", B::NAME),
    }
    assert!(matches!(
        inst.get_typed_func::<(i32, i32), i64>(&mut store, "i32_add"),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        inst.get_typed_func::<i32, i32>(&mut store, "no_such_export"),
        Err(Error::NotFound { .. })
    ));
    let add = inst.get_func(&mut store, "i32_add").unwrap();
    assert!(matches!(
        add.invoke(&mut store, &[Val::I32(1)]),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        add.invoke(&mut store, &[Val::I32(1), Val::I64(2)]),
        Err(Error::TypeMismatch { .. })
    ));
    let mut too_few: [Val<B>; 0] = [];
    assert!(matches!(
        add.call(&mut store, &[Val::I32(1), Val::I32(2)], &mut too_few),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        call(&mut store, &inst, "missing", &[]),
        Err(Error::NotFound { .. })
    ));
}

const VECTORS: &str = r#"
(module
  (import "host" "xor" (func $xor (param v128 v128) (result v128)))
  (func (export "reverse") (param v128 i32) (result i32 v128)
    local.get 1
    local.get 0
    local.get 0
    i8x16.shuffle 15 14 13 12 11 10 9 8 7 6 5 4 3 2 1 0)
  (func (export "high") (param v128) (result i64)
    local.get 0
    i64x2.extract_lane 1)
  (func (export "via_host") (param v128 v128) (result v128)
    local.get 0
    local.get 1
    call $xor))
"#;

/// `v128` values through typed calls and typed host functions, in both
/// directions and mixed with numbers; a wrong vector signature is refused.
pub fn typed_v128<B: Backend>()
where
    SigOf<(V128, i32), (i32, V128)>: TypedSig<B, Params = (V128, i32), Results = (i32, V128)>,
    SigOf<V128, i64>: TypedSig<B, Params = (V128,), Results = (i64,)>,
    SigOf<i64, i64>: TypedSig<B, Params = (i64,), Results = (i64,)>,
    SigOf<V128, i32>: TypedSig<B, Params = (V128,), Results = (i32,)>,
    SigOf<(V128, V128), V128>: TypedSig<B, Params = (V128, V128), Results = (V128,)>
        + HostSig<B, Params = (V128, V128), Results = (V128,)>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, VECTORS);
    let mut linker = Linker::<B, ()>::new();
    linker
        .func_wrap("host", "xor", |a: V128, b: V128| V128(a.0 ^ b.0))
        .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &module).unwrap();

    let x = V128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
    let reverse = inst
        .get_typed_func::<(V128, i32), (i32, V128)>(&mut store, "reverse")
        .unwrap();
    // Byte 0 of the result is byte 15 of the argument, and so on.
    assert_eq!(
        reverse.call(&mut store, (x, -7)).unwrap(),
        (-7, V128(0x1032_5476_98ba_dcfe_efcd_ab89_6745_2301)),
        "{}",
        B::NAME
    );
    let high = inst
        .get_typed_func::<V128, i64>(&mut store, "high")
        .unwrap();
    assert_eq!(high.call(&mut store, x).unwrap(), 0x0123_4567_89ab_cdef);

    let y = V128(u128::MAX);
    let via_host = inst
        .get_typed_func::<(V128, V128), V128>(&mut store, "via_host")
        .unwrap();
    let expected = V128(0xfedc_ba98_7654_3210_0123_4567_89ab_cdef);
    assert_eq!(via_host.call(&mut store, (x, y)).unwrap(), expected);
    let dynamic = call(&mut store, &inst, "via_host", &[Val::V128(x), Val::V128(y)]).unwrap();
    assert!(matches!(dynamic[..], [Val::V128(v)] if v == expected));

    // A host function made directly, called from the host through the engine.
    let direct =
        anywasm_core::Func::wrap(&mut store, |a: V128, b: V128| V128(a.0.wrapping_add(b.0)));
    assert_eq!(
        direct.ty(&store).unwrap().to_string(),
        "(func (param v128 v128) (result v128))"
    );
    let typed = direct.typed::<(V128, V128), V128>(&store).unwrap();
    assert_eq!(typed.call(&mut store, (y, V128(2))).unwrap(), V128(1));

    assert!(matches!(
        inst.get_typed_func::<i64, i64>(&mut store, "high"),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        inst.get_typed_func::<V128, i32>(&mut store, "high"),
        Err(Error::TypeMismatch { .. })
    ));
}
