;; The part of the Extism kernel that guests call per byte or per word:
;; loads and stores in the kernel memory and loads from the input. Guests'
;; imports of these functions are bound to this module's exports, so each
;; call is a call from wasm to wasm, not into the host.
;;
;; The host owns everything else (allocation, handles, output, errors) and
;; keeps the globals up to date: `end` is the end of the bytes handed out
;; (never past the memory's size, at least 8), `input_at` and
;; `input_len` locate the current input (length 0 once it is freed).
;; Outside those bounds loads give 0 and stores do nothing, as in Extism's
;; bounds-checked kernel.
(module
  (memory (export "memory") 1)
  (global $end (export "end") (mut i64) (i64.const 8))
  (global $in_off (export "input_at") (mut i64) (i64.const 0))
  (global $in_len (export "input_len") (mut i64) (i64.const 0))

  (func (export "load_u8") (param $p i64) (result i32)
    (if (result i32) (i64.lt_u (local.get $p) (global.get $end))
      (then (i32.load8_u (i32.wrap_i64 (local.get $p))))
      (else (i32.const 0))))

  ;; `end` is at least 8, so `end - 8` does not wrap.
  (func (export "load_u64") (param $p i64) (result i64)
    (if (result i64) (i64.le_u (local.get $p) (i64.sub (global.get $end) (i64.const 8)))
      (then (i64.load (i32.wrap_i64 (local.get $p))))
      (else (i64.const 0))))

  (func (export "store_u8") (param $p i64) (param $x i32)
    (if (i64.lt_u (local.get $p) (global.get $end))
      (then (i32.store8 (i32.wrap_i64 (local.get $p)) (local.get $x)))))

  (func (export "store_u64") (param $p i64) (param $x i64)
    (if (i64.le_u (local.get $p) (i64.sub (global.get $end) (i64.const 8)))
      (then (i64.store (i32.wrap_i64 (local.get $p)) (local.get $x)))))

  (func (export "input_length") (result i64) (global.get $in_len))
  (func (export "input_offset") (result i64) (global.get $in_off))

  (func (export "input_load_u8") (param $o i64) (result i32)
    (if (result i32) (i64.lt_u (local.get $o) (global.get $in_len))
      (then (i32.load8_u (i32.wrap_i64 (i64.add (global.get $in_off) (local.get $o)))))
      (else (i32.const 0))))

  (func (export "input_load_u64") (param $o i64) (result i64)
    (if (result i64)
        (i32.and
          (i64.ge_u (global.get $in_len) (i64.const 8))
          (i64.le_u (local.get $o) (i64.sub (global.get $in_len) (i64.const 8))))
      (then (i64.load (i32.wrap_i64 (i64.add (global.get $in_off) (local.get $o)))))
      (else (i64.const 0)))))
