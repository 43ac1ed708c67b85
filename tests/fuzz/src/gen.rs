//! Cases: from a seed and a case number, the statements to run (with what each may end in)
//! and the inputs they were made of.

use std::fmt::Write;

use crate::rng::{case_seed, Rng};
use crate::wasm::{self, FuncExport, Info, Shape, Template, Ty};

/// One statement of a case.
pub struct Stmt {
    /// What it exercises (the statistics are kept per kind).
    pub kind: &'static str,
    pub sql: String,
    /// The outcomes allowed: `ok` and SQLSTATEs separated by `|`, or `any`.
    pub expect: String,
    /// Index of an earlier statement: when that one failed, this one may end in anything.
    pub requires: Option<usize>,
}

pub struct Case {
    pub seed: u64,
    pub number: u64,
    pub label: String,
    pub notes: Vec<String>,
    pub stmts: Vec<Stmt>,
    /// The inputs, saved beside a failing case: (file name, contents).
    pub files: Vec<(String, Vec<u8>)>,
}

/// The SQL of a scalar or variable-length type plwasm maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlTy {
    Int2,
    Int4,
    Bool,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
}

impl SqlTy {
    fn name(self) -> &'static str {
        match self {
            SqlTy::Int2 => "smallint",
            SqlTy::Int4 => "integer",
            SqlTy::Bool => "boolean",
            SqlTy::Int8 => "bigint",
            SqlTy::Float4 => "real",
            SqlTy::Float8 => "double precision",
            SqlTy::Text => "text",
            SqlTy::Bytea => "bytea",
        }
    }

    /// Its wasm image as an argument.
    fn arg_wasm(self) -> Vec<Ty> {
        match self {
            SqlTy::Int2 | SqlTy::Int4 | SqlTy::Bool => vec![Ty::I32],
            SqlTy::Int8 => vec![Ty::I64],
            SqlTy::Float4 => vec![Ty::F32],
            SqlTy::Float8 => vec![Ty::F64],
            SqlTy::Text | SqlTy::Bytea => vec![Ty::I32, Ty::I32],
        }
    }

    /// Its wasm image as a result.
    fn result_wasm(self) -> Vec<Ty> {
        match self {
            SqlTy::Text | SqlTy::Bytea => vec![Ty::I64],
            t => t.arg_wasm(),
        }
    }
}

const SCALARS: &[SqlTy] = &[
    SqlTy::Int2,
    SqlTy::Int4,
    SqlTy::Bool,
    SqlTy::Int8,
    SqlTy::Float4,
    SqlTy::Float8,
];

/// A SQL signature: arguments, result (`None`: void), SETOF.
#[derive(Clone, Debug)]
pub struct Sig {
    pub args: Vec<SqlTy>,
    pub result: Option<SqlTy>,
    pub setof: bool,
}

impl Sig {
    fn wasm(&self) -> (Vec<Ty>, Vec<Ty>) {
        let params = self.args.iter().flat_map(|a| a.arg_wasm()).collect();
        let results = if self.setof {
            vec![]
        } else {
            self.result.map(|r| r.result_wasm()).unwrap_or_default()
        };
        (params, results)
    }

    fn args_sql(&self) -> String {
        self.args
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn returns_sql(&self) -> String {
        match (self.result, self.setof) {
            (Some(r), true) => format!("SETOF {}", r.name()),
            (Some(r), false) => r.name().to_string(),
            (None, _) => "void".into(),
        }
    }
}

fn i32_sql(rng: &mut Rng) -> SqlTy {
    *rng.pick(&[
        SqlTy::Int4,
        SqlTy::Int4,
        SqlTy::Int4,
        SqlTy::Bool,
        SqlTy::Int2,
    ])
}

/// A SQL signature whose wasm image is the export's, if there is one (variable-length types
/// only when the module has `memory` and `plwasm_alloc`; SETOF for exports without results
/// when the module may emit rows).
pub fn map_sig(rng: &mut Rng, f: &FuncExport, varlena: bool, can_emit: bool) -> Option<Sig> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < f.params.len() {
        if varlena
            && i + 1 < f.params.len()
            && f.params[i] == Ty::I32
            && f.params[i + 1] == Ty::I32
            && rng.chance(50)
        {
            args.push(*rng.pick(&[SqlTy::Text, SqlTy::Bytea]));
            i += 2;
            continue;
        }
        args.push(match f.params[i] {
            Ty::I32 => i32_sql(rng),
            Ty::I64 => SqlTy::Int8,
            Ty::F32 => SqlTy::Float4,
            Ty::F64 => SqlTy::Float8,
            Ty::Other => return None,
        });
        i += 1;
    }
    let (result, setof) = match f.results.as_slice() {
        [] if can_emit && rng.chance(50) => {
            let t = if varlena {
                &[SqlTy::Int4, SqlTy::Int8, SqlTy::Float8, SqlTy::Text][..]
            } else {
                &[
                    SqlTy::Int4,
                    SqlTy::Bool,
                    SqlTy::Int8,
                    SqlTy::Float4,
                    SqlTy::Float8,
                ][..]
            };
            (Some(*rng.pick(t)), true)
        }
        [] => (None, false),
        [Ty::I32] => (Some(i32_sql(rng)), false),
        [Ty::I64] if varlena && rng.chance(60) => {
            (Some(*rng.pick(&[SqlTy::Text, SqlTy::Bytea])), false)
        }
        [Ty::I64] => (Some(SqlTy::Int8), false),
        [Ty::F32] => (Some(SqlTy::Float4), false),
        [Ty::F64] => (Some(SqlTy::Float8), false),
        _ => return None,
    };
    Some(Sig {
        args,
        result,
        setof,
    })
}

fn random_sig(rng: &mut Rng) -> Sig {
    Sig {
        args: (0..rng.range(0, 4)).map(|_| *rng.pick(SCALARS)).collect(),
        result: if rng.chance(20) {
            None
        } else {
            Some(*rng.pick(SCALARS))
        },
        setof: false,
    }
}

/// SQL string literal (standard_conforming_strings on).
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Double-quoted SQL identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Dollar-quoted SQL text, with a tag the text does not contain.
pub fn dollar(s: &str) -> String {
    let mut tag = "fz".to_string();
    let mut n = 0;
    while s.contains(&format!("${tag}$")) {
        n += 1;
        tag = format!("fz{n}");
    }
    format!("${tag}${s}${tag}$")
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2 + 12);
    s.push_str("'\\x");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s.push_str("'::bytea");
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn float_lit(v: f64, ty: &str) -> String {
    if v.is_nan() {
        format!("'NaN'::{ty}")
    } else if v.is_infinite() {
        format!("'{}Infinity'::{ty}", if v < 0.0 { "-" } else { "" })
    } else {
        format!("'{v:e}'::{ty}")
    }
}

/// A random argument value, edge values often.
fn value(rng: &mut Rng, t: SqlTy) -> String {
    if rng.chance(4) {
        return format!("NULL::{}", t.name());
    }
    match t {
        SqlTy::Int4 => {
            let v: i64 = if rng.chance(60) {
                *rng.pick(&[
                    0,
                    1,
                    -1,
                    2,
                    7,
                    255,
                    256,
                    65535,
                    65536,
                    1 << 20,
                    i32::MIN as i64,
                    i32::MAX as i64,
                    i32::MIN as i64 + 1,
                    i32::MAX as i64 - 1,
                ])
            } else {
                rng.next_u64() as i32 as i64
            };
            format!("'{v}'::integer")
        }
        SqlTy::Int2 => {
            let v: i64 = if rng.chance(60) {
                *rng.pick(&[0, 1, -1, i16::MIN as i64, i16::MAX as i64, 255])
            } else {
                rng.next_u64() as i16 as i64
            };
            format!("'{v}'::smallint")
        }
        SqlTy::Bool => rng.pick(&["true", "false"]).to_string(),
        SqlTy::Int8 => {
            let v: i64 = if rng.chance(60) {
                *rng.pick(&[
                    0,
                    1,
                    -1,
                    i64::MIN,
                    i64::MAX,
                    i32::MIN as i64,
                    i32::MAX as i64,
                    1 << 32,
                    (1 << 32) - 1,
                    -(1 << 32),
                ])
            } else {
                rng.next_u64() as i64
            };
            format!("'{v}'::bigint")
        }
        SqlTy::Float4 => {
            let v: f32 = if rng.chance(60) {
                *rng.pick(&[
                    0.0,
                    -0.0,
                    1.0,
                    -1.0,
                    0.5,
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::MAX,
                    f32::MIN,
                    f32::MIN_POSITIVE,
                    2147483648.0,
                    -2147483904.0,
                    4294967296.0,
                    1e-45,
                ])
            } else {
                f32::from_bits(rng.next_u64() as u32)
            };
            if v.is_finite() {
                format!("'{v:e}'::real")
            } else {
                float_lit(v as f64, "real")
            }
        }
        SqlTy::Float8 => {
            let v: f64 = if rng.chance(60) {
                *rng.pick(&[
                    0.0,
                    -0.0,
                    1.0,
                    -1.0,
                    0.5,
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::MAX,
                    f64::MIN,
                    f64::MIN_POSITIVE,
                    9.223372036854776e18,
                    -9.223372036854778e18,
                    2147483648.0,
                    5e-324,
                ])
            } else {
                f64::from_bits(rng.next_u64())
            };
            float_lit(v, "double precision")
        }
        SqlTy::Text => match rng.range(0, 6) {
            0 => "''::text".into(),
            1 => "'héllo wörld 🦀'::text".into(),
            2 => format!(
                "repeat('x', {})",
                rng.pick(&[1000, 65536, 1 << 20, 8 << 20])
            ),
            3 => "'it''s'::text".into(),
            _ => {
                let n = rng.range(1, 64) as usize;
                let s: String = (0..n)
                    .map(|_| (b' ' + (rng.next_u64() % 95) as u8) as char)
                    .collect();
                format!("{}::text", lit(&s))
            }
        },
        SqlTy::Bytea => match rng.range(0, 4) {
            0 => "''::bytea".into(),
            1 => format!(
                "decode(repeat('ab', {}), 'hex')",
                rng.pick(&[1000, 65536, 1 << 20])
            ),
            _ => {
                let n = rng.range(1, 64) as usize;
                hex(&rng.bytes(n))
            }
        },
    }
}

fn args_of(rng: &mut Rng, sig: &Sig) -> String {
    sig.args
        .iter()
        .map(|t| value(rng, *t))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What binding export `name` ends in when it would otherwise end in `ok`: plwasm trims the
/// function body, so an export name that ends in white space cannot be bound (42883 names the
/// trimmed name), and an empty one is `module:` (42P13).
/// (Either of the outcomes for a trailing white space, so a fix does not fail the fuzzer.)
fn bind_expect(name: &str, ok: &str) -> String {
    if name.trim_end().is_empty() {
        "42P13".into()
    } else if name != name.trim_end() {
        format!("{ok}|42883")
    } else {
        ok.into()
    }
}

/// What a call of a function over a module without imports may end in (docs/sql-reference.md,
/// "Errors while calling"): a trap 38000; fuel, wasm.max_memory 54000; the wasm stack 54001;
/// statement_timeout 57014; an int2 result out of range 22003; a NULL argument 22004; a text
/// result that is not UTF-8 or has NUL 22021; an argument literal out of range 22003/22P02.
const CALL_OUTCOMES: &str = "ok|38000|54000|54001|57014|22003|22004|22P02|22021";

/// Builds a case's statements.
struct Builder {
    rng: Rng,
    case: Case,
    tag: String,
    funcs: usize,
    /// wasm.max_module_size is 200 bytes in this case: loads and inline bodies may be 54000.
    small_limit: bool,
}

impl Builder {
    fn push(
        &mut self,
        kind: &'static str,
        sql: String,
        expect: &str,
        requires: Option<usize>,
    ) -> usize {
        let mut expect = expect.to_string();
        let limited = kind.starts_with("load") || kind == "create_inline";
        if self.small_limit
            && limited
            && expect != "any"
            && !expect.split('|').any(|e| e == "54000")
        {
            expect.push_str("|54000");
        }
        self.case.stmts.push(Stmt {
            kind,
            sql,
            expect,
            requires,
        });
        self.case.stmts.len() - 1
    }

    fn note(&mut self, s: String) {
        self.case.notes.push(s);
    }

    /// Calls of a created function: single calls, and some over many rows (so an instance is
    /// reused after earlier calls, and after a trap replaced it).
    fn calls(&mut self, fname: &str, sig: &Sig, create: usize, expect: &str) {
        for _ in 0..self.rng.range(1, 4) {
            let args = args_of(&mut self.rng, sig);
            let (kind, sql) = if sig.setof {
                (
                    "call",
                    format!("SELECT count(*) FROM (SELECT * FROM {fname}({args}) LIMIT 100000) s"),
                )
            } else if self.rng.chance(20) {
                let n = self.rng.range(2, 50);
                ("call_rows", format!("SELECT count(x) FROM (SELECT {fname}({args}) AS x FROM generate_series(1, {n})) s"))
            } else if matches!(sig.result, Some(SqlTy::Text) | Some(SqlTy::Bytea)) {
                ("call", format!("SELECT md5({fname}({args})::bytea)"))
            } else {
                ("call", format!("SELECT {fname}({args})"))
            };
            self.push(kind, sql, expect, Some(create));
        }
    }

    /// CREATE FUNCTION over each function export of module `module` (loaded by statement
    /// `load`), then calls. Some functions are declared with a signature that does not match.
    fn functions(
        &mut self,
        module: &str,
        info: &Info,
        load: usize,
        call_expect: &str,
        can_emit: bool,
    ) {
        let varlena = info.varlena_ok();
        let funcs: Vec<FuncExport> = info
            .funcs
            .iter()
            .filter(|f| !f.name.contains('\0'))
            .take(8)
            .cloned()
            .collect();
        for f in funcs {
            if f.name.starts_with("plwasm_")
                || f.name == "_initialize"
                || f.name.starts_with("__plwasm")
            {
                continue;
            }
            self.funcs += 1;
            let fname = format!("fz.{}_f{}", self.tag, self.funcs);
            let body = lit(&format!("{module}:{}", f.name));
            let strict = if self.rng.chance(50) { " STRICT" } else { "" };
            let vol = *self.rng.pick(&[
                "",
                " IMMUTABLE",
                " STABLE",
                " VOLATILE PARALLEL SAFE",
                " IMMUTABLE PARALLEL SAFE",
            ]);
            match map_sig(&mut self.rng, &f, varlena, can_emit) {
                Some(sig) if !self.rng.chance(10) => {
                    let expect = bind_expect(&f.name, "ok");
                    let create = self.push(
                        "create",
                        format!("CREATE FUNCTION {fname}({}) RETURNS {} LANGUAGE wasm{strict}{vol} AS {body}", sig.args_sql(), sig.returns_sql()),
                        &expect,
                        Some(load),
                    );
                    self.calls(&fname, &sig, create, call_expect);
                }
                _ => {
                    // A signature that does not match the export's (or no SQL signature can).
                    let sig = random_sig(&mut self.rng);
                    let expect = bind_expect(
                        &f.name,
                        if sig.wasm() == (f.params.clone(), f.results.clone()) {
                            "ok"
                        } else {
                            "42P13"
                        },
                    );
                    let create = self.push(
                        "create_mismatch",
                        format!("CREATE FUNCTION {fname}({}) RETURNS {} LANGUAGE wasm{strict} AS {body}", sig.args_sql(), sig.returns_sql()),
                        &expect,
                        Some(load),
                    );
                    if expect.starts_with("ok") {
                        self.calls(&fname, &sig, create, call_expect);
                    }
                }
            }
        }
        for other in info.others.iter().take(2) {
            if other.contains('\0') {
                continue;
            }
            self.funcs += 1;
            let fname = format!("fz.{}_f{}", self.tag, self.funcs);
            self.push(
                "create_mismatch",
                format!(
                    "CREATE FUNCTION {fname}() RETURNS integer LANGUAGE wasm AS {}",
                    lit(&format!("{module}:{other}"))
                ),
                &bind_expect(other, "42809"),
                Some(load),
            );
        }
    }

    /// A `plwasm.udfs` section describing the module's mappable functions (some lines broken)
    /// for wasm.create_functions; returns the section's text.
    fn udfs_section(&mut self, info: &Info) -> String {
        let mut lines = Vec::new();
        for (i, f) in info.funcs.iter().enumerate().take(6) {
            let Some(sig) = map_sig(&mut self.rng, f, false, false) else {
                continue;
            };
            let args: Vec<String> = sig
                .args
                .iter()
                .enumerate()
                .map(|(k, t)| format!("{{\"name\":\"a{k}\",\"type\":\"{}\"}}", t.name()))
                .collect();
            let returns = sig.result.map(|r| r.name()).unwrap_or("void");
            let mut line = format!(
                "{{\"name\":\"{}_u{i}\",\"export\":{},\"args\":[{}],\"returns\":\"{returns}\",\"strict\":{},\"volatility\":\"{}\"}}",
                self.tag,
                json_str(&f.name),
                args.join(","),
                self.rng.chance(50),
                self.rng.pick(&["immutable", "stable", "volatile"])
            );
            if self.rng.chance(25) {
                // A broken or hostile line.
                line = match self.rng.range(0, 7) {
                    0 => line.replace(returns, "integer); DROP TABLE fz.nothing; --"),
                    1 => line.replace("\"strict\"", "\"setof\":true,\"strict\""),
                    2 => line.chars().take(self.rng.below(line.chars().count().max(1))).collect(),
                    3 => line.replace(returns, "no_such_type"),
                    4 => line.replace("\"name\":\"", "\"name\":\"x\\\"y\\u0000"),
                    5 => line.replace("volatility", "cost\":1e300,\"rows\":-1,\"volatility"),
                    6 => format!("{{\"kind\":\"aggregate\",\"name\":\"{}_agg\",\"sfunc\":\"{}_u{i}\",\"finalfunc\":\"{}_u{i}\"}}", self.tag, self.tag, self.tag),
                    _ => format!("{line},{line}"),
                };
                line.retain(|c| c != '\0');
            }
            lines.push(line);
        }
        lines.join("\n")
    }
}

/// Makes case `number` of a run with `seed`.
pub fn make(seed: u64, number: u64) -> Case {
    let mut b = Builder {
        rng: Rng::new(case_seed(seed, number)),
        case: Case {
            seed,
            number,
            label: String::new(),
            notes: vec![],
            stmts: vec![],
            files: vec![],
        },
        tag: format!("c{number}"),
        funcs: 0,
        small_limit: false,
    };
    // Limits of this case.
    // Mostly a fuel limit; without one (1 case in 16) only statement_timeout stops endless
    // loops, 2 s each.
    let fuel = if b.rng.chance(6) {
        0
    } else {
        *b.rng
            .pick(&[1000u64, 100_000, 1_000_000, 10_000_000, 10_000_000])
    };
    let max_memory = if b.rng.chance(3) {
        *b.rng.pick(&["256MB", "1GB"])
    } else {
        *b.rng.pick(&["64kB", "1MB", "16MB", "64MB", "64MB"])
    };
    b.push(
        "setting",
        format!("SET wasm.fuel_limit = {fuel}"),
        "ok",
        None,
    );
    b.push(
        "setting",
        format!("SET wasm.max_memory = '{max_memory}'"),
        "ok",
        None,
    );
    // Parallel workers: every parallel-safe query (each call of a PARALLEL SAFE function)
    // runs in a worker process, which instantiates the module itself.
    let parallel = if b.rng.chance(10) { "on" } else { "off" };
    b.push(
        "setting",
        format!("SET force_parallel_mode = {parallel}"),
        "ok",
        None,
    );
    // (Settings last for the session: each case sets all of them.)
    b.small_limit = b.rng.chance(3);
    let size = if b.small_limit { "200" } else { "DEFAULT" };
    b.push(
        "setting",
        format!("SET wasm.max_module_size = {size}"),
        "ok",
        None,
    );
    match b.rng.range(0, 99) {
        0..=29 => stored(&mut b, "template"),
        30..=44 => stored(&mut b, "free"),
        45..=54 => stored(&mut b, "host"),
        55..=74 => mutant(&mut b),
        75..=81 => refused(&mut b),
        82..=90 => wat(&mut b),
        _ => inline(&mut b),
    }
    b.case
}

fn valid_module(b: &mut Builder, kind: &str) -> (Vec<u8>, Option<Template>) {
    for _ in 0..20 {
        let template = if kind == "free" {
            None
        } else {
            Some(Template::random(&mut b.rng))
        };
        let imports = if kind == "host" {
            Some(wasm::host_imports(&mut b.rng))
        } else {
            None
        };
        let shape = Shape {
            template: template.as_ref().map(|t| t.encode()),
            imports,
            refused_features: false,
        };
        let config = wasm::smith_config(&mut b.rng, &shape);
        if let Some(bytes) = wasm::smith(&mut b.rng, config) {
            return (bytes, template);
        }
    }
    (b"\0asm\x01\0\0\0".to_vec(), None)
}

/// Whether a module exports a reserved name (`__plwasm...`).
fn reserved(info: &Info) -> bool {
    info.funcs.iter().any(|f| f.name.starts_with("__plwasm"))
        || info.others.iter().any(|o| o.starts_with("__plwasm"))
}

/// What wasm.load of `bytes` may end in, by wasmparser with plwasm's feature set: invalid
/// modules and reserved export names are 22P03, a module too large for the limits 54000.
fn load_expect(bytes: &[u8]) -> &'static str {
    let info = wasm::inspect(bytes);
    if wasm::validate(bytes).is_err() || reserved(&info) {
        "22P03"
    } else if nul_name(&info) {
        // An export name with U+0000 cannot be stored (exports are jsonb): refused, 22P03.
        "22P03"
    } else {
        "ok|54000"
    }
}

/// Whether an export's name contains U+0000.
fn nul_name(info: &Info) -> bool {
    info.funcs.iter().any(|f| f.name.contains('\0')) || info.others.iter().any(|o| o.contains('\0'))
}

/// A valid module loaded with wasm.load, its functions created and called, maybe replaced
/// and rolled back, maybe described in a `plwasm.udfs` section; then unloaded.
fn stored(b: &mut Builder, kind: &str) {
    let (mut bytes, _) = valid_module(b, kind);
    let mut udfs = None;
    if b.rng.chance(15) {
        let info = wasm::inspect(&bytes);
        let text = b.udfs_section(&info);
        wasm::add_custom(&mut bytes, "plwasm.udfs", text.as_bytes());
        udfs = Some(text);
    }
    if b.rng.chance(25) {
        // DWARF for the code: read by plwasm for the source lines of trap backtraces.
        let sections = crate::dwarf::sections(&mut b.rng, &bytes);
        let names: Vec<String> = sections
            .iter()
            .map(|(n, d)| format!("{n} ({} bytes)", d.len()))
            .collect();
        b.note(format!("DWARF sections: {}", names.join(", ")));
        for (name, data) in sections {
            wasm::add_custom(&mut bytes, &name, &data);
        }
    }
    let mut abi_ok = true;
    if b.rng.chance(5) {
        let v = *b.rng.pick(&[
            "1\n",
            "1\n1\n",
            "2\n",
            "",
            "x",
            "1\n\n",
            "99999999999999999999\n",
        ]);
        abi_ok = matches!(v, "1\n" | "1\n1\n" | "" | "1\n\n");
        wasm::add_custom(&mut bytes, "plwasm.abi", v.as_bytes());
        b.note(format!("plwasm.abi section {v:?}"));
    }
    b.case.label = format!("{kind} module ({} bytes)", bytes.len());
    b.case.files.push(("module.wasm".into(), bytes.clone()));
    if let Ok(text) = wasmprinter::print_bytes(&bytes) {
        b.case.files.push(("module.wat".into(), text.into_bytes()));
    }
    let valid = wasm::validate(&bytes);
    if let Err(e) = &valid {
        // wasm-smith made something plwasm's feature set does not validate (should not happen).
        b.note(format!("not valid under plwasm's features: {e}"));
    }
    let expect = if !abi_ok {
        "0A000|22P03"
    } else {
        load_expect(&bytes)
    };
    let module = b.tag.clone();
    // `load`: modules that should load; `load_bad`: reserved names, foreign ABIs, (invalid).
    let load_kind = if expect.starts_with("ok") {
        "load"
    } else {
        "load_bad"
    };
    let load = b.push(
        load_kind,
        format!("SELECT wasm.load({}, {})", lit(&module), hex(&bytes)),
        expect,
        None,
    );
    let info = wasm::inspect(&bytes);
    let host = kind == "host";
    // Host modules may raise any SQLSTATE through plwasm.error_code.
    let call_expect = if host { "any" } else { CALL_OUTCOMES };
    // After a load that must fail, functions only now and then (42704: no such module).
    if load_kind == "load" || b.rng.chance(25) {
        b.functions(&module, &info, load, call_expect, host);
    }
    if let Some(text) = udfs {
        b.note(format!("plwasm.udfs section:\n{text}"));
        b.push(
            "create_functions",
            format!(
                "SELECT count(*) FROM wasm.create_functions({}, 'fz')",
                lit(&module)
            ),
            "any",
            Some(load),
        );
    }
    if b.rng.chance(20) {
        // Replace with another module (maybe a mutant), call again, maybe roll back.
        let (other, _) = if b.rng.chance(50) {
            valid_module(b, kind)
        } else {
            (bytes.clone(), None)
        };
        let other = if b.rng.chance(50) {
            wasm::mutate(&mut b.rng, &other).0
        } else {
            other
        };
        b.case
            .files
            .push(("replacement.wasm".into(), other.clone()));
        let replace = b.push(
            "replace",
            format!("SELECT wasm.load({}, {}, true)", lit(&module), hex(&other)),
            "any",
            Some(load),
        );
        let other_info = wasm::inspect(&other);
        // Its functions are created only if the replace went through.
        b.functions(&module, &other_info, replace, "any", host);
        if b.rng.chance(50) {
            b.push(
                "rollback",
                format!("SELECT wasm.rollback({})", lit(&module)),
                "any",
                Some(load),
            );
            b.push(
                "call",
                format!(
                    "SELECT count(*) FROM wasm.modules WHERE name = {}",
                    lit(&module)
                ),
                "ok",
                None,
            );
        }
    }
    b.push(
        "cleanup",
        format!("SELECT wasm.unload({}, cascade => true)", lit(&module)),
        "ok|42704",
        None,
    );
}

/// A mutated module (bit flips, truncation, corrupted sections, ...) through wasm.load; when
/// it still loads, its functions are created and called.
fn mutant(b: &mut Builder) {
    let kind = *b.rng.pick(&["template", "free", "host"]);
    let (bytes, _) = valid_module(b, kind);
    let (mutated, how) = wasm::mutate(&mut b.rng, &bytes);
    b.case.label = format!(
        "mutant of a {kind} module ({} bytes): {}",
        mutated.len(),
        how.join(", ")
    );
    b.case.files.push(("original.wasm".into(), bytes));
    b.case.files.push(("module.wasm".into(), mutated.clone()));
    let valid = wasm::validate(&mutated);
    let info = wasm::inspect(&mutated);
    let reserved = reserved(&info);
    // A valid mutant may still import what plwasm does not provide, or break plwasm's own
    // custom sections; an invalid one must be refused as invalid (or for its imports).
    let expect = match &valid {
        Ok(()) if reserved => "22P03",
        Ok(()) if nul_name(&info) => "0A000|22P03",
        Ok(()) => "ok|0A000|54000",
        Err(e) => {
            b.note(format!("wasmparser: {e}"));
            "22P03|0A000"
        }
    };
    let module = b.tag.clone();
    let load = b.push(
        "load_mutant",
        format!("SELECT wasm.load({}, {})", lit(&module), hex(&mutated)),
        expect,
        None,
    );
    if valid.is_ok() {
        b.functions(&module, &info, load, "any", kind == "host");
    }
    b.push(
        "cleanup",
        format!("SELECT wasm.unload({}, cascade => true)", lit(&module)),
        "ok|42704",
        None,
    );
}

/// A module made with proposals plwasm refuses turned on: refused with 22P03 when it uses
/// them (by wasmparser with plwasm's feature set), loaded and called otherwise.
fn refused(b: &mut Builder) {
    let mut bytes = None;
    for _ in 0..20 {
        let template = if b.rng.chance(50) {
            Some(Template::random(&mut b.rng).encode())
        } else {
            None
        };
        let shape = Shape {
            template,
            imports: None,
            refused_features: true,
        };
        let config = wasm::smith_config(&mut b.rng, &shape);
        if let Some(m) = wasm::smith(&mut b.rng, config) {
            bytes = Some(m);
            break;
        }
    }
    let bytes = bytes.unwrap_or_else(|| b"\0asm\x01\0\0\0".to_vec());
    let valid = wasm::validate(&bytes);
    b.case.label = format!(
        "module with refused proposals ({} bytes, {})",
        bytes.len(),
        if valid.is_ok() {
            "uses none"
        } else {
            "uses one"
        }
    );
    b.case.files.push(("module.wasm".into(), bytes.clone()));
    if let Ok(text) = wasmprinter::print_bytes(&bytes) {
        b.case.files.push(("module.wat".into(), text.into_bytes()));
    }
    let info = wasm::inspect(&bytes);
    let reserved = reserved(&info);
    let expect = match &valid {
        Ok(()) if reserved => "22P03",
        Ok(()) if nul_name(&info) => "22P03",
        Ok(()) => "ok|54000",
        Err(e) => {
            b.note(format!("wasmparser with plwasm's features: {e}"));
            "22P03"
        }
    };
    let module = b.tag.clone();
    let load = b.push(
        "load_refused",
        format!("SELECT wasm.load({}, {})", lit(&module), hex(&bytes)),
        expect,
        None,
    );
    if valid.is_ok() {
        b.functions(&module, &info, load, CALL_OUTCOMES, false);
    }
    b.push(
        "cleanup",
        format!("SELECT wasm.unload({}, cascade => true)", lit(&module)),
        "ok|42704",
        None,
    );
}

/// WAT text (wasmprinter's of a wasm-smith module), maybe mutated, through wasm.wat; the
/// result loaded when it compiled.
fn wat(b: &mut Builder) {
    let kind = *b.rng.pick(&["template", "free", "host"]);
    let (bytes, _) = valid_module(b, kind);
    let Ok(text) = wasmprinter::print_bytes(&bytes) else {
        b.case.label = "wat: wasmprinter failed".into();
        return;
    };
    let mutated = b.rng.chance(70);
    let (text, how) = if mutated {
        wasm::mutate_wat(&mut b.rng, &text)
    } else {
        (text, vec![])
    };
    b.case.label = format!(
        "wat of a {kind} module ({} chars){}{}",
        text.len(),
        if mutated { ", mutated: " } else { "" },
        how.join(", ")
    );
    b.case.files.push(("original.wasm".into(), bytes.clone()));
    b.case
        .files
        .push(("module.wat".into(), text.clone().into_bytes()));
    let expect = if mutated { "ok|42601|54000" } else { "ok" };
    let wat = b.push(
        "wat",
        format!("SELECT length(wasm.wat({}))", dollar(&text)),
        expect,
        None,
    );
    let module = b.tag.clone();
    let load_expect = if mutated { "any" } else { load_expect(&bytes) };
    let load = b.push(
        "load_wat",
        format!(
            "SELECT wasm.load({}, wasm.wat({}))",
            lit(&module),
            dollar(&text)
        ),
        load_expect,
        Some(wat),
    );
    if !mutated {
        let info = wasm::inspect(&bytes);
        b.functions(
            &module,
            &info,
            load,
            if kind == "host" { "any" } else { CALL_OUTCOMES },
            kind == "host",
        );
    }
    b.push(
        "cleanup",
        format!("SELECT wasm.unload({}, cascade => true)", lit(&module)),
        "ok|42704",
        None,
    );
}

/// An inline body: the WAT of a module as `CREATE FUNCTION "export"(...) AS '(module ...)'`,
/// maybe mutated; called when it was created.
fn inline(b: &mut Builder) {
    let kind = *b.rng.pick(&["template", "template", "host"]);
    let (bytes, _) = valid_module(b, kind);
    let info = wasm::inspect(&bytes);
    let Ok(text) = wasmprinter::print_bytes(&bytes) else {
        b.case.label = "inline: wasmprinter failed".into();
        return;
    };
    // An export whose name can be a function's name.
    let candidates: Vec<&FuncExport> = info
        .funcs
        .iter()
        .filter(|f| {
            !f.name.is_empty()
                && f.name.len() < 60
                && !f.name.contains('\0')
                && !f.name.starts_with("plwasm_")
                && f.name != "_initialize"
        })
        .collect();
    if candidates.is_empty() {
        b.case.label = "inline: no export to bind".into();
        return;
    }
    let f = candidates[b.rng.below(candidates.len())].clone();
    let mutated = b.rng.chance(30);
    let (text, how) = if mutated {
        wasm::mutate_wat(&mut b.rng, &text)
    } else {
        (text, vec![])
    };
    b.case.label = format!(
        "inline body of a {kind} module ({} chars), export {:?}{}{}",
        text.len(),
        f.name,
        if mutated { ", mutated: " } else { "" },
        how.join(", ")
    );
    b.case.files.push(("original.wasm".into(), bytes.clone()));
    b.case
        .files
        .push(("body.wat".into(), text.clone().into_bytes()));
    let host = kind == "host";
    let sig = map_sig(&mut b.rng, &f, info.varlena_ok(), host);
    let (sig, expect) = match sig {
        Some(s) => (
            s,
            if mutated || reserved(&info) || wasm::validate(&bytes).is_err() {
                "any"
            } else {
                "ok|54000|38000|54001|57014"
            },
        ),
        None => (random_sig(&mut b.rng), "any"),
    };
    let fname = format!("fz.{}", ident(&f.name));
    let par = if b.rng.chance(50) {
        " PARALLEL SAFE"
    } else {
        ""
    };
    let create = b.push(
        "create_inline",
        format!(
            "CREATE FUNCTION {fname}({}) RETURNS {} LANGUAGE wasm{par} AS {}",
            sig.args_sql(),
            sig.returns_sql(),
            dollar(&text)
        ),
        expect,
        None,
    );
    b.calls(
        &fname,
        &sig,
        create,
        if host || mutated {
            "any"
        } else {
            CALL_OUTCOMES
        },
    );
    b.push(
        "cleanup",
        format!("DROP FUNCTION IF EXISTS {fname}({})", sig.args_sql()),
        "ok",
        None,
    );
}

/// The case as a psql script: every statement after a `-- @stmt KIND expect=... [requires=N]`
/// line, so `replay` reads it back.
pub fn script(case: &Case, preamble: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "-- plwasm fuzz: case {} of seed {}: {}",
        case.number,
        case.seed,
        case.label.replace('\n', " ")
    );
    for n in &case.notes {
        for line in n.lines() {
            let _ = writeln!(s, "-- note: {line}");
        }
    }
    let _ = writeln!(
        s,
        "-- Run with psql (each statement may fail; what it may end in is on its @stmt line)."
    );
    for p in preamble {
        let _ = writeln!(s, "{p};");
    }
    for (i, st) in case.stmts.iter().enumerate() {
        let req = st
            .requires
            .map(|r| format!(" requires={r}"))
            .unwrap_or_default();
        let _ = writeln!(s, "-- @stmt {} {} expect={}{}", i, st.kind, st.expect, req);
        let _ = writeln!(s, "{};", st.sql);
    }
    s
}

/// Reads a script written by `script` back into statements.
pub fn parse_script(text: &str) -> Vec<Stmt> {
    let mut out: Vec<Stmt> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("-- @stmt ") {
            let mut kind = "replay";
            let mut expect = "any".to_string();
            let mut requires = None;
            for word in rest.split_whitespace().skip(1) {
                if let Some(e) = word.strip_prefix("expect=") {
                    expect = e.to_string();
                } else if let Some(r) = word.strip_prefix("requires=") {
                    requires = r.parse().ok();
                } else {
                    kind = KINDS
                        .iter()
                        .find(|k| **k == word)
                        .copied()
                        .unwrap_or("replay");
                }
            }
            out.push(Stmt {
                kind,
                sql: String::new(),
                expect,
                requires,
            });
        } else if let Some(last) = out.last_mut() {
            last.sql.push_str(line);
        }
    }
    for st in &mut out {
        let t = st.sql.trim_end();
        st.sql = t.strip_suffix(';').unwrap_or(t).to_string();
    }
    out
}

pub const KINDS: &[&str] = &[
    "setting",
    "load",
    "load_bad",
    "load_wat",
    "load_mutant",
    "load_refused",
    "wat",
    "create",
    "create_mismatch",
    "create_inline",
    "create_functions",
    "call",
    "call_rows",
    "replace",
    "rollback",
    "cleanup",
];
