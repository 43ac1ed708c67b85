//! The macros' mistakes are compile errors that say what to write instead (trybuild: each file
//! in tests/ui must fail to compile with exactly the .stderr next to it; regenerate with
//! TRYBUILD=overwrite after reading the change).

#[test]
fn macro_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
