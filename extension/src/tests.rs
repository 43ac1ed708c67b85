//! In-backend tests (`cargo pgrx test`): behaviour that needs a live backend and is not visible
//! from SQL alone. User-visible SQL behaviour is covered by `tests/pg_regress`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::catalog;

    const MATH: &str = r#"(module
        (global $calls (mut i32) (i32.const 0))
        (func (export "add") (param i32 i32) (result i32)
            local.get 0 local.get 1 i32.add)
        (func (export "bump") (result i32)
            global.get $calls i32.const 1 i32.add global.set $calls global.get $calls)
        (func (export "bump_then_trap") (result i32)
            global.get $calls i32.const 1 i32.add global.set $calls unreachable))"#;

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn one<T: IntoDatum + FromDatum>(sql: &str) -> T {
        Spi::get_one::<T>(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql}: NULL"))
    }

    fn load(name: &str, wat: &str, replace: bool) {
        run(&format!(
            "SELECT wasm.load('{name}', wasm.wat($wat${wat}$wat$), {replace})"
        ));
    }

    #[pg_test]
    fn call_path_does_no_catalog_lookup() {
        load("math", MATH, false);
        run("CREATE FUNCTION add(int, int) RETURNS int LANGUAGE wasm STRICT AS 'math'");
        // Resolve once (first call site of the statement may look the module up).
        assert_eq!(
            one::<i64>("SELECT sum(add(i, 1))::int8 FROM generate_series(1, 10) i"),
            65
        );
        let before = catalog::lookup_count();
        let total = one::<i64>("SELECT sum(add(i, 1))::int8 FROM generate_series(1, 20000) i");
        assert_eq!(total, 200_030_000);
        assert!(
            catalog::lookup_count() - before <= 1,
            "20000 calls made {} catalog look-ups",
            catalog::lookup_count() - before
        );
        // Nothing changed since: a new statement re-uses the verified instance without looking.
        let before = catalog::lookup_count();
        assert_eq!(one::<i32>("SELECT add(2, 3)"), 5);
        assert_eq!(catalog::lookup_count(), before);
    }

    const ECHO: &str = r#"(module
        (memory (export "memory") 1)
        (global $next (mut i32) (i32.const 1024))
        (func (export "plwasm_alloc") (param $len i32) (result i32) (local $p i32)
            (local.set $p (global.get $next))
            (global.set $next (i32.add (global.get $next) (local.get $len)))
            (if (i32.gt_u (global.get $next) (i32.const 60000)) (then (global.set $next (i32.const 1024))))
            (local.get $p))
        (func (export "echo") (param i32 i32) (result i64)
            (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32))
                    (i64.extend_i32_u (local.get 1)))))"#;

    #[pg_test]
    fn json_form_types_and_decoders_per_call_site() {
        use crate::abi::json_form::{decoders_made, eligible};
        for oid in [
            pg_sys::NUMERICOID,
            pg_sys::DATEOID,
            pg_sys::UUIDOID,
            pg_sys::RECORDOID,
            pg_sys::TEXTARRAYOID,
        ] {
            assert!(eligible(oid), "{oid:?}");
        }
        for oid in [
            pg_sys::ANYELEMENTOID,
            pg_sys::INTERNALOID,
            pg_sys::TRIGGEROID,
        ] {
            assert!(!eligible(oid), "{oid:?}");
        }
        load("echo", ECHO, false);
        run("CREATE FUNCTION echo_numeric(numeric) RETURNS numeric LANGUAGE wasm STRICT AS 'echo:echo'");
        run("CREATE TYPE pt AS (x int, y int)");
        run("CREATE FUNCTION echo_pt(pt) RETURNS pt LANGUAGE wasm STRICT AS 'echo:echo'");
        let before = decoders_made();
        let same = one::<i64>(
            "SELECT count(*) FILTER (WHERE echo_numeric(i / 3.0) = i / 3.0 \
                                  AND echo_pt(ROW(i, -i)::pt) = ROW(i, -i)::pt) \
             FROM generate_series(1, 2000) i",
        );
        assert_eq!(same, 2000);
        // One result decoder per call site, not per call.
        assert_eq!(decoders_made() - before, 2);
    }

    #[pg_test]
    fn instance_state_persists_across_calls() {
        load("counter", MATH, false);
        run("CREATE FUNCTION bump() RETURNS int LANGUAGE wasm AS 'counter'");
        assert_eq!(one::<i32>("SELECT bump()"), 1);
        assert_eq!(one::<i32>("SELECT bump()"), 2);
        assert_eq!(
            one::<i64>("SELECT max(bump())::int8 FROM generate_series(1, 3)"),
            5
        );
    }

    #[pg_test]
    fn trapped_instance_is_replaced_by_a_fresh_one() {
        load("trapper", MATH, false);
        run("CREATE FUNCTION bump() RETURNS int LANGUAGE wasm AS 'trapper'");
        run("CREATE FUNCTION bump_then_trap() RETURNS int LANGUAGE wasm AS 'trapper'");
        assert_eq!(one::<i32>("SELECT bump()"), 1);
        assert_eq!(one::<i32>("SELECT bump()"), 2);
        // Trap inside a subtransaction so this test's transaction survives.
        run("CREATE TEMP TABLE trapped (state text)");
        run(
            "DO $$ BEGIN PERFORM bump_then_trap(); EXCEPTION WHEN OTHERS THEN \
             INSERT INTO trapped VALUES (SQLSTATE); END $$",
        );
        assert_eq!(one::<String>("SELECT state FROM trapped"), "38000");
        // The instance that trapped (with its half-updated global) is gone.
        assert_eq!(one::<i32>("SELECT bump()"), 1);
    }

    #[pg_test]
    fn replace_is_seen_by_the_next_statement() {
        load(
            "ver",
            "(module (func (export \"v\") (result i32) i32.const 1))",
            false,
        );
        run("CREATE FUNCTION v() RETURNS int LANGUAGE wasm AS 'ver'");
        assert_eq!(one::<i32>("SELECT v()"), 1);
        let generation = catalog::generation();
        load(
            "ver",
            "(module (func (export \"v\") (result i32) i32.const 2))",
            true,
        );
        assert_eq!(one::<i32>("SELECT v()"), 2);
        assert!(catalog::generation() > generation);
    }

    #[pg_test]
    fn generation_moves_only_for_the_module_catalog() {
        assert_eq!(one::<i32>("SELECT 1"), 1);
        let generation = catalog::generation();
        run("CREATE TABLE unrelated (x int); ALTER TABLE unrelated ADD COLUMN y int");
        assert_eq!(catalog::generation(), generation);
        load("gen", "(module)", false);
        run("SELECT 1");
        assert!(catalog::generation() > generation);
    }

    #[pg_test]
    fn exports_are_recorded_with_signatures() {
        load("sig", MATH, false);
        let exports = one::<pgrx::JsonB>("SELECT exports FROM wasm.modules WHERE name = 'sig'");
        assert_eq!(
            exports.0[0],
            serde_json::json!({"name": "add", "kind": "function",
                               "params": ["i32", "i32"], "results": ["i32"]})
        );
        // The recorded SHA-256 is the module bytes' digest as Postgres computes it.
        let matches = one::<bool>(&format!(
            "SELECT sha256 = encode(sha256(wasm.wat($wat${MATH}$wat$)), 'hex') FROM wasm.modules WHERE name = 'sig'"
        ));
        assert!(
            matches,
            "wasm.modules.sha256 is the hex SHA-256 of the module's bytes"
        );
    }

    #[pg_test]
    #[should_panic(
        expected = "wasm trap in function boom() (module \"b\", export \"boom\"): unreachable"
    )]
    fn trap_is_an_error_naming_function_module_and_export() {
        load("b", "(module (func (export \"boom\") unreachable))", false);
        run("CREATE FUNCTION boom() RETURNS void LANGUAGE wasm AS 'b'");
        run("SELECT boom()");
    }

    /// A module with `unreachable` in export "f" and DWARF whose debug_info nests `depth`
    /// inlined-subroutine entries (a hostile review crashed the backend with this through
    /// addr2line's recursive walk of them, at depth 20000).
    fn deeply_nested_dwarf(depth: usize) -> Vec<u8> {
        fn leb(mut n: usize, out: &mut Vec<u8>) {
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(byte);
                    return;
                }
                out.push(byte | 0x80);
            }
        }
        fn section(id: u8, data: &[u8], out: &mut Vec<u8>) {
            out.push(id);
            leb(data.len(), out);
            out.extend_from_slice(data);
        }
        fn custom(name: &str, data: &[u8], out: &mut Vec<u8>) {
            let mut body = Vec::new();
            leb(name.len(), &mut body);
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(data);
            section(0, &body, out);
        }
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        section(1, b"\x01\x60\x00\x01\x7f", &mut module); // type () -> i32
        section(3, b"\x01\x00", &mut module);
        section(7, b"\x01\x01f\x00\x00", &mut module); // export "f"
        section(10, b"\x01\x03\x00\x00\x0b", &mut module); // unreachable
                                                           // Abbreviations: 1 compile unit, 2 subprogram (both low_pc/high_pc, with children),
                                                           // 3 inlined subroutine (with children, no attributes).
        let abbrev = [
            1, 0x11, 1, 0x11, 0x01, 0x12, 0x0f, 0, 0, 2, 0x2e, 1, 0x11, 0x01, 0x12, 0x0f, 0, 0, 3,
            0x1d, 1, 0, 0, 0,
        ];
        let mut dies = vec![1, 0, 0, 0, 0];
        leb(0x7fff_ffff, &mut dies);
        dies.extend_from_slice(&[2, 0, 0, 0, 0]);
        leb(0x7fff_ffff, &mut dies);
        dies.extend(std::iter::repeat_n(3u8, depth));
        dies.extend(std::iter::repeat_n(0u8, depth + 2));
        let mut unit = vec![4, 0, 0, 0, 0, 0, 4]; // DWARF 4, abbrev offset 0, address size 4
        unit.extend_from_slice(&dies);
        let mut info = (unit.len() as u32).to_le_bytes().to_vec();
        info.extend_from_slice(&unit);
        custom(".debug_info", &info, &mut module);
        custom(".debug_abbrev", &abbrev, &mut module);
        custom(".debug_line", &[], &mut module);
        module
    }

    #[pg_test]
    #[should_panic(
        expected = "wasm trap in function deep_dwarf() (module \"deep_dwarf\", export \"f\"): unreachable"
    )]
    fn hostile_dwarf_is_not_walked_recursively() {
        Spi::run_with_args(
            "SELECT wasm.load('deep_dwarf', $1)",
            &[deeply_nested_dwarf(200_000).into()],
        )
        .unwrap_or_else(|e| panic!("load: {e}"));
        run("CREATE FUNCTION deep_dwarf() RETURNS int LANGUAGE wasm AS 'deep_dwarf:f'");
        run("SELECT deep_dwarf()");
    }

    #[pg_test]
    fn inline_module_is_compiled_once() {
        run(
            r#"CREATE FUNCTION sq(int) RETURNS int LANGUAGE wasm STRICT AS
               '(module (func (export "sq") (param i32) (result i32) local.get 0 local.get 0 i32.mul))'"#,
        );
        let before = catalog::lookup_count();
        // The validator compiled it once already (CREATE FUNCTION); the calls reuse that.
        let compiles_before = crate::runtime::compile_count();
        assert_eq!(
            one::<i64>("SELECT sum(sq(i))::int8 FROM generate_series(1, 100) i"),
            338_350
        );
        assert_eq!(
            one::<i64>("SELECT sum(sq(i))::int8 FROM generate_series(1, 10) i"),
            385
        );
        assert_eq!(
            crate::runtime::compile_count(),
            compiles_before,
            "the calls reuse what CREATE FUNCTION compiled: no compile per call or statement"
        );
        assert_eq!(
            catalog::lookup_count(),
            before,
            "inline modules never look a module up"
        );
    }
}

/// Hooks `cargo pgrx test` calls.
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
