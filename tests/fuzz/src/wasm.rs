//! WebAssembly side of the generator: wasm-smith configurations, the modules that tell
//! wasm-smith which exports and imports to make, inspection of a module (its function exports
//! and whether plwasm's feature set accepts it), and mutations of binaries and of WAT text.

use std::borrow::Cow;

use arbitrary::Unstructured;
use wasm_encoder::{
    CodeSection, CustomSection, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, ImportSection, MemorySection, MemoryType, Module, RefType,
    TableSection, TableType, TypeSection, ValType,
};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

use crate::rng::Rng;

/// A scalar wasm value type (the only ones exports are made with; wasm-smith may add others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    I32,
    I64,
    F32,
    F64,
    /// v128, funcref, externref, ...: no SQL type maps to it.
    Other,
}

impl Ty {
    fn encoder(self) -> ValType {
        match self {
            Ty::I32 => ValType::I32,
            Ty::I64 => ValType::I64,
            Ty::F32 => ValType::F32,
            Ty::F64 => ValType::F64,
            Ty::Other => ValType::V128,
        }
    }

    fn from_parser(t: wasmparser::ValType) -> Ty {
        match t {
            wasmparser::ValType::I32 => Ty::I32,
            wasmparser::ValType::I64 => Ty::I64,
            wasmparser::ValType::F32 => Ty::F32,
            wasmparser::ValType::F64 => Ty::F64,
            _ => Ty::Other,
        }
    }
}

/// The features plwasm accepts (extension/src/runtime/mod.rs, `features()`): WebAssembly 2.0
/// (bulk memory, reference types, multi-value, SIMD, sign extension, saturating conversions)
/// and extended constant expressions.
pub fn plwasm_features() -> WasmFeatures {
    WasmFeatures::WASM2 | WasmFeatures::EXTENDED_CONST
}

/// Whether plwasm's feature set validates `bytes` (`Err` has wasmparser's message).
pub fn validate(bytes: &[u8]) -> Result<(), String> {
    Validator::new_with_features(plwasm_features())
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A function export and its signature.
#[derive(Clone, Debug)]
pub struct FuncExport {
    pub name: String,
    pub params: Vec<Ty>,
    pub results: Vec<Ty>,
}

/// What the generator needs to know about a module.
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub funcs: Vec<FuncExport>,
    /// Exports that are no function (memory, table, global, tag).
    pub others: Vec<String>,
    pub exports_memory: bool,
    pub exports_alloc: bool,
    pub imports: Vec<(String, String)>,
}

impl Info {
    /// Whether the module may take and return variable-length values (`memory` and
    /// `plwasm_alloc(i32) -> i32` exported).
    pub fn varlena_ok(&self) -> bool {
        self.exports_memory && self.exports_alloc
    }
}

/// Reads the exports of `bytes` (as far as they parse; a module that does not parse gives
/// what was read before the error).
pub fn inspect(bytes: &[u8]) -> Info {
    let mut info = Info::default();
    let mut types: Vec<Option<(Vec<Ty>, Vec<Ty>)>> = Vec::new();
    let mut funcs: Vec<u32> = Vec::new();
    let mut exports: Vec<(String, wasmparser::ExternalKind, u32)> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::TypeSection(reader) => {
                for group in reader.into_iter() {
                    let Ok(group) = group else { break };
                    for sub in group.into_types() {
                        types.push(match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => Some((
                                f.params().iter().map(|t| Ty::from_parser(*t)).collect(),
                                f.results().iter().map(|t| Ty::from_parser(*t)).collect(),
                            )),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let Ok(import) = import else { break };
                    if let wasmparser::TypeRef::Func(t) = import.ty {
                        funcs.push(t);
                    }
                    info.imports
                        .push((import.module.to_string(), import.name.to_string()));
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader.into_iter() {
                    let Ok(t) = t else { break };
                    funcs.push(t);
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader.into_iter() {
                    let Ok(e) = e else { break };
                    exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            _ => {}
        }
    }
    for (name, kind, index) in exports {
        match kind {
            wasmparser::ExternalKind::Func => {
                let sig = funcs
                    .get(index as usize)
                    .and_then(|t| types.get(*t as usize))
                    .cloned()
                    .flatten();
                if let Some((params, results)) = sig {
                    if name == "plwasm_alloc" && params == [Ty::I32] && results == [Ty::I32] {
                        info.exports_alloc = true;
                    }
                    info.funcs.push(FuncExport {
                        name,
                        params,
                        results,
                    });
                }
            }
            wasmparser::ExternalKind::Memory => {
                if name == "memory" {
                    info.exports_memory = true;
                }
                info.others.push(name);
            }
            _ => info.others.push(name),
        }
    }
    info
}

fn random_ty(rng: &mut Rng) -> Ty {
    *rng.pick(&[Ty::I32, Ty::I32, Ty::I64, Ty::F32, Ty::F64])
}

/// Export names: mostly plain, sometimes ones that SQL has to quote or that plwasm must handle
/// with care (a colon, quotes, non-ASCII, empty, long, backslashes).
fn export_name(rng: &mut Rng, i: usize) -> String {
    match rng.range(0, 19) {
        0 => String::new(),
        1 => format!("a:b:{i}"),
        2 => format!("it's \"{i}\""),
        3 => format!("ünïcødé_{i}_\u{1F980}"),
        4 => format!("{}{i}", "x".repeat(rng.range(60, 300) as usize)),
        5 => format!("back\\slash\\{i}"),
        6 => format!("sp ace {i}"),
        7 => format!("Upper{i}"),
        8 => format!("$$dollar{i}$$"),
        _ => format!("f{i}"),
    }
}

/// Options of the module that tells wasm-smith which exports to make.
pub struct Template {
    /// Function exports: name, parameters, results.
    pub funcs: Vec<(String, Vec<Ty>, Vec<Ty>)>,
    /// Export `memory` and `plwasm_alloc(i32) -> i32` (and maybe `plwasm_free(i32, i32)`).
    pub varlena: bool,
    /// Export a global `g` and a table `t` (CREATE FUNCTION over them: 42809).
    pub non_functions: bool,
    /// Export `_initialize` (a WASI reactor's start).
    pub initialize: bool,
    /// Export a reserved name (`__plwasm_...`): wasm.load must refuse the module with 22P03.
    pub reserved: bool,
}

impl Template {
    pub fn random(rng: &mut Rng) -> Template {
        let n = rng.range(1, 6) as usize;
        let mut funcs = Vec::new();
        let mut names = std::collections::HashSet::new();
        for i in 0..n {
            let params = (0..rng.range(0, 5)).map(|_| random_ty(rng)).collect();
            let results = match rng.range(0, 9) {
                0 | 1 => vec![],
                2 => vec![random_ty(rng), random_ty(rng)], // multi-value: no SQL type
                _ => vec![random_ty(rng)],
            };
            let name = export_name(rng, i);
            if names.insert(name.clone()) {
                funcs.push((name, params, results));
            }
        }
        let varlena = rng.chance(30);
        if varlena {
            // Functions over variable-length values: (ptr, len) arguments, (ptr << 32 | len) result.
            let k = funcs.len();
            funcs.push((format!("v{k}"), vec![Ty::I32, Ty::I32], vec![Ty::I64]));
            funcs.push((
                format!("v{}", k + 1),
                vec![Ty::I32, Ty::I32, Ty::I32],
                vec![Ty::I64],
            ));
        }
        Template {
            funcs,
            varlena,
            non_functions: rng.chance(10),
            initialize: rng.chance(10),
            reserved: rng.chance(3),
        }
    }

    /// The module wasm-smith copies the exports of (bodies are wasm-smith's own).
    pub fn encode(&self) -> Vec<u8> {
        let mut module = Module::new();
        let mut types = TypeSection::new();
        let mut functions = FunctionSection::new();
        let mut exports = ExportSection::new();
        let mut code = CodeSection::new();
        let mut all: Vec<(String, Vec<Ty>, Vec<Ty>)> = self.funcs.clone();
        if self.varlena {
            all.push(("plwasm_alloc".into(), vec![Ty::I32], vec![Ty::I32]));
            all.push(("plwasm_free".into(), vec![Ty::I32, Ty::I32], vec![]));
        }
        if self.initialize {
            all.push(("_initialize".into(), vec![], vec![]));
        }
        if self.reserved {
            all.push(("__plwasm_fuel".into(), vec![], vec![]));
        }
        for (i, (name, params, results)) in all.iter().enumerate() {
            types.ty().function(
                params.iter().map(|t| t.encoder()),
                results.iter().map(|t| t.encoder()),
            );
            functions.function(i as u32);
            exports.export(name, ExportKind::Func, i as u32);
            let mut f = Function::new(vec![]);
            f.instructions().unreachable().end();
            code.function(&f);
        }
        module.section(&types);
        module.section(&functions);
        let mut tables = TableSection::new();
        let mut memories = MemorySection::new();
        let mut globals = GlobalSection::new();
        if self.non_functions {
            tables.table(TableType {
                element_type: RefType::FUNCREF,
                table64: false,
                minimum: 1,
                maximum: None,
                shared: false,
            });
            exports.export("t", ExportKind::Table, 0);
            module.section(&tables);
        }
        if self.varlena {
            memories.memory(MemoryType {
                minimum: 1,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
            exports.export("memory", ExportKind::Memory, 0);
            module.section(&memories);
        }
        if self.non_functions {
            globals.global(
                GlobalType {
                    val_type: ValType::I32,
                    mutable: true,
                    shared: false,
                },
                &wasm_encoder::ConstExpr::i32_const(7),
            );
            exports.export("g", ExportKind::Global, 0);
            module.section(&globals);
        }
        module.section(&exports);
        module.section(&code);
        module.finish()
    }
}

use Ty::{F32, F64, I32, I64};

/// The plwasm host API (extension/src/runtime/host_api.rs) and WASI preview 1
/// (extension/src/runtime/wasi.rs), with their exact signatures.
const HOST_IMPORTS: &[(&str, &str, &[Ty], &[Ty])] = &[
    ("plwasm", "emit_i32", &[I32], &[]),
    ("plwasm", "emit_i64", &[I64], &[]),
    ("plwasm", "emit_f32", &[F32], &[]),
    ("plwasm", "emit_f64", &[F64], &[]),
    ("plwasm", "emit_bytes", &[I32, I32], &[]),
    ("plwasm", "emit_null", &[], &[]),
    ("plwasm", "arg_is_null", &[I32], &[I32]),
    ("plwasm", "return_null", &[], &[]),
    ("plwasm", "log", &[I32, I32, I32], &[]),
    ("plwasm", "error", &[I32, I32], &[]),
    ("plwasm", "error_code", &[I32, I32, I32, I32], &[]),
    ("plwasm", "panic", &[I32, I32, I32, I32, I32], &[]),
    ("plwasm", "transaction_id", &[], &[I64]),
    ("plwasm", "random_u64", &[], &[I64]),
    ("wasi_snapshot_preview1", "args_get", &[I32, I32], &[I32]),
    (
        "wasi_snapshot_preview1",
        "args_sizes_get",
        &[I32, I32],
        &[I32],
    ),
    ("wasi_snapshot_preview1", "environ_get", &[I32, I32], &[I32]),
    (
        "wasi_snapshot_preview1",
        "environ_sizes_get",
        &[I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "clock_res_get",
        &[I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "clock_time_get",
        &[I32, I64, I32],
        &[I32],
    ),
    ("wasi_snapshot_preview1", "fd_close", &[I32], &[I32]),
    (
        "wasi_snapshot_preview1",
        "fd_fdstat_get",
        &[I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "fd_filestat_get",
        &[I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "fd_pread",
        &[I32, I32, I32, I64, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "fd_prestat_get",
        &[I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "fd_prestat_dir_name",
        &[I32, I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "fd_pwrite",
        &[I32, I32, I32, I64, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "fd_read",
        &[I32, I32, I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "fd_readdir",
        &[I32, I32, I32, I64, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "fd_seek",
        &[I32, I64, I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "fd_write",
        &[I32, I32, I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "path_open",
        &[I32, I32, I32, I32, I32, I64, I64, I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "path_readlink",
        &[I32, I32, I32, I32, I32, I32],
        &[I32],
    ),
    (
        "wasi_snapshot_preview1",
        "poll_oneoff",
        &[I32, I32, I32, I32],
        &[I32],
    ),
    ("wasi_snapshot_preview1", "proc_exit", &[I32], &[]),
    ("wasi_snapshot_preview1", "proc_raise", &[I32], &[I32]),
    ("wasi_snapshot_preview1", "sched_yield", &[], &[I32]),
    ("wasi_snapshot_preview1", "random_get", &[I32, I32], &[I32]),
    (
        "wasi_snapshot_preview1",
        "sock_recv",
        &[I32, I32, I32, I32, I32, I32],
        &[I32],
    ),
];

/// The module of imports wasm-smith may use: a random subset of the host API and WASI.
pub fn host_imports(rng: &mut Rng) -> Vec<u8> {
    let mut module = Module::new();
    let mut types = TypeSection::new();
    let mut imports = ImportSection::new();
    let mut n = 0;
    for (i, (m, name, params, results)) in HOST_IMPORTS.iter().enumerate() {
        // The host API's functions are the interesting ones: keep most of them.
        let keep = if *m == "plwasm" { 70 } else { 40 };
        let last_chance = i == HOST_IMPORTS.len() - 1 && n == 0;
        if !(rng.chance(keep) || last_chance) {
            continue;
        }
        types.ty().function(
            params.iter().map(|t| t.encoder()),
            results.iter().map(|t| t.encoder()),
        );
        imports.import(m, name, EntityType::Function(n));
        n += 1;
    }
    module.section(&types);
    module.section(&imports);
    module.finish()
}

/// Sizes of generated modules stay small: they compile in milliseconds.
pub struct Shape {
    pub template: Option<Vec<u8>>,
    pub imports: Option<Vec<u8>>,
    /// Turn on proposals plwasm refuses (threads, memory64, multi-memory, exceptions, tail
    /// calls, relaxed SIMD, wide arithmetic, custom page sizes, GC).
    pub refused_features: bool,
}

#[allow(clippy::field_reassign_with_default)]
pub fn smith_config(rng: &mut Rng, shape: &Shape) -> wasm_smith::Config {
    let mut c = wasm_smith::Config::default();
    c.max_imports = if shape.imports.is_some() {
        rng.range(1, 12) as usize
    } else {
        0
    };
    c.available_imports = shape.imports.clone();
    c.exports = shape.template.clone();
    c.export_everything = shape.template.is_none() && rng.chance(40);
    c.min_funcs = 1;
    c.max_funcs = rng.range(1, 12) as usize;
    c.min_exports = if shape.template.is_none() { 1 } else { 0 };
    c.max_exports = rng.range(1, 12) as usize;
    c.max_instructions = *rng.pick(&[10, 50, 200, 600]);
    c.max_nesting_depth = rng.range(2, 12) as usize;
    c.max_types = 30;
    c.max_type_size = 200;
    c.max_globals = rng.range(0, 10) as usize;
    c.max_data_segments = rng.range(0, 6) as usize;
    c.max_element_segments = rng.range(0, 6) as usize;
    c.max_elements = 50;
    c.max_tables = rng.range(0, 3) as usize;
    c.max_table_elements = *rng.pick(&[16, 1000, 100_000, 20_000_000]);
    c.max_memories = 1;
    // Pages up to 16MB mostly; some up to 256MB, above the default wasm.max_memory (64MB).
    c.max_memory32_bytes = *rng.pick(&[1u64 << 16, 1 << 20, 16 << 20, 16 << 20, 256 << 20]);
    c.memory_max_size_required = rng.chance(30);
    c.table_max_size_required = rng.chance(30);
    c.allow_start_export = rng.chance(50);
    c.disallow_traps = rng.chance(50);
    c.canonicalize_nans = rng.chance(10);
    c.generate_custom_sections = rng.chance(20);
    c.min_uleb_size = if rng.chance(15) {
        rng.range(2, 5) as u8
    } else {
        1
    };
    c.allow_floats = rng.chance(90);
    // What plwasm accepts.
    c.bulk_memory_enabled = true;
    c.reference_types_enabled = rng.chance(80);
    c.multi_value_enabled = true;
    c.simd_enabled = rng.chance(60);
    c.saturating_float_to_int_enabled = true;
    c.sign_extension_ops_enabled = true;
    c.extended_const_enabled = true;
    // Encodings and proposals older Wasmer does not know, or plwasm refuses.
    c.compact_imports_enabled = false;
    c.threads_enabled = false;
    c.shared_everything_threads_enabled = false;
    c.memory64_enabled = false;
    c.exceptions_enabled = false;
    c.tail_call_enabled = false;
    c.relaxed_simd_enabled = false;
    c.wide_arithmetic_enabled = false;
    c.custom_page_sizes_enabled = false;
    c.gc_enabled = false;
    c.custom_descriptors_enabled = false;
    if shape.refused_features {
        // One or two of the refused proposals (the module may still not use them).
        for _ in 0..rng.range(1, 2) {
            match rng.range(0, 8) {
                0 => c.threads_enabled = true,
                1 => c.memory64_enabled = true,
                2 => {
                    c.max_memories = rng.range(2, 4) as usize;
                    c.min_memories = 2;
                }
                3 => c.exceptions_enabled = true,
                4 => c.tail_call_enabled = true,
                5 => {
                    c.relaxed_simd_enabled = true;
                    c.simd_enabled = true;
                }
                6 => c.wide_arithmetic_enabled = true,
                7 => c.custom_page_sizes_enabled = true,
                _ => {
                    c.gc_enabled = true;
                    c.reference_types_enabled = true;
                }
            }
        }
    }
    c
}

/// A wasm-smith module for `config`, from random bytes.
pub fn smith(rng: &mut Rng, config: wasm_smith::Config) -> Option<Vec<u8>> {
    let n = rng.range(256, 24 * 1024) as usize;
    let data = rng.bytes(n);
    let mut u = Unstructured::new(&data);
    wasm_smith::Module::new(config, &mut u)
        .ok()
        .map(|m| m.to_bytes())
}

/// Appends a custom section.
pub fn add_custom(bytes: &mut Vec<u8>, name: &str, data: &[u8]) {
    use wasm_encoder::Encode;
    let section = CustomSection {
        name: Cow::Borrowed(name),
        data: Cow::Borrowed(data),
    };
    bytes.push(0);
    let mut payload = Vec::new();
    section.encode(&mut payload);
    // `encode` writes the section's size and contents (name + data).
    bytes.extend_from_slice(&payload);
}

fn leb(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb(bytes: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let start = pos;
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *bytes.get(pos)?;
        pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some((v, pos - start));
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
}

/// Top-level sections: (start of the id byte, start of the payload, payload length).
fn sections(bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 8;
    while pos < bytes.len() {
        let Some((len, n)) = read_leb(bytes, pos + 1) else {
            break;
        };
        let payload = pos + 1 + n;
        if payload + len as usize > bytes.len() {
            break;
        }
        out.push((pos, payload, len as usize));
        pos = payload + len as usize;
    }
    out
}

const EDGE_BYTES: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0x0b, 0x40, 0x60, 0x70, 0x6f, 0x7b, 0xfd, 0xfc,
];

/// 1 to 4 mutations of a module's bytes: bit flips, byte edits, truncation, insertion and
/// deletion of bytes, corrupted section lengths and vector counts, duplicated and swapped
/// sections, splices. Returns the mutant and what was done.
pub fn mutate(rng: &mut Rng, bytes: &[u8]) -> (Vec<u8>, Vec<String>) {
    let mut b = bytes.to_vec();
    let mut done = Vec::new();
    for _ in 0..rng.range(1, 4) {
        if b.is_empty() {
            b.extend_from_slice(b"\0asm\x01\0\0\0");
        }
        let pos = rng.below(b.len());
        let secs = sections(&b);
        match rng.range(0, 11) {
            0 => {
                let bit = rng.range(0, 7);
                b[pos] ^= 1 << bit;
                done.push(format!("flip bit {bit} of byte {pos}"));
            }
            1 => {
                let v = *rng.pick(EDGE_BYTES);
                b[pos] = v;
                done.push(format!("byte {pos} = {v:#04x}"));
            }
            2 => {
                // Keep the header mostly, so the parser gets further.
                let at = if pos < 8 && rng.chance(80) {
                    8.min(b.len())
                } else {
                    pos
                };
                b.truncate(at);
                done.push(format!("truncate at {at}"));
            }
            3 => {
                let n = rng.range(1, 16) as usize;
                let ins = rng.bytes(n);
                b.splice(pos..pos, ins);
                done.push(format!("insert {n} bytes at {pos}"));
            }
            4 => {
                let n = (rng.range(1, 16) as usize).min(b.len() - pos);
                b.drain(pos..pos + n);
                done.push(format!("delete {n} bytes at {pos}"));
            }
            5 if !secs.is_empty() => {
                // A section's size LEB replaced by another value (and maybe another width).
                let (id_at, payload, len) = secs[rng.below(secs.len())];
                let new_len = match rng.range(0, 4) {
                    0 => 0,
                    1 => len as u64 + rng.range(1, 8),
                    2 => (len as u64).saturating_sub(rng.range(1, 8)),
                    3 => u32::MAX as u64,
                    _ => rng.range(0, 1 << 20),
                };
                let mut enc = Vec::new();
                leb(new_len, &mut enc);
                b.splice(id_at + 1..payload, enc);
                done.push(format!("section at {id_at}: size {len} -> {new_len}"));
            }
            6 if !secs.is_empty() => {
                // The first LEB of a section's payload (mostly a vector's count) made huge.
                let (id_at, payload, len) = secs[rng.below(secs.len())];
                if let Some((_, n)) = read_leb(&b, payload).filter(|(_, n)| *n <= len) {
                    let v = *rng.pick(&[0u64, 1, 0xffff, 0x0fff_ffff, u32::MAX as u64]);
                    let mut enc = Vec::new();
                    leb(v, &mut enc);
                    // Keep the width so the section's size stays right.
                    while enc.len() < n {
                        let last = enc.len() - 1;
                        enc[last] |= 0x80;
                        enc.push(0);
                    }
                    if enc.len() == n {
                        b.splice(payload..payload + n, enc);
                        done.push(format!("section at {id_at}: first count -> {v}"));
                    }
                }
            }
            7 if !secs.is_empty() => {
                let (id_at, payload, len) = secs[rng.below(secs.len())];
                let copy = b[id_at..payload + len].to_vec();
                b.splice(payload + len..payload + len, copy);
                done.push(format!("duplicate section at {id_at}"));
            }
            8 if secs.len() >= 2 => {
                let i = rng.below(secs.len() - 1);
                let (a0, ap, al) = secs[i];
                let (_, bp, bl) = secs[i + 1];
                let first = b[a0..ap + al].to_vec();
                let second = b[ap + al..bp + bl].to_vec();
                let mut both = second;
                both.extend_from_slice(&first);
                b.splice(a0..bp + bl, both);
                done.push(format!("swap sections at {a0}"));
            }
            9 => {
                let from = rng.below(b.len());
                let n = (rng.range(1, 64) as usize).min(b.len() - from);
                let chunk = b[from..from + n].to_vec();
                let at = rng.below(b.len());
                b.splice(at..at, chunk);
                done.push(format!("copy {n} bytes from {from} to {at}"));
            }
            _ => {
                let v = *rng.pick(&[
                    &[0xffu8, 0xff, 0xff, 0xff, 0x0f][..],
                    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
                    &[0xff, 0xff, 0xff, 0xff, 0x7f],
                ]);
                let end = (pos + v.len()).min(b.len());
                b.splice(pos..end, v.iter().copied());
                done.push(format!("LEB {v:02x?} at {pos}"));
            }
        }
    }
    (b, done)
}

const WAT_TOKENS: &[&str] = &[
    "(",
    ")",
    "(module",
    "(func",
    "(param i32)",
    "(result i64)",
    "i32.const",
    "i64.const 0",
    "i32.add",
    "drop",
    "unreachable",
    "$x",
    "\"",
    "\\",
    "\\u{110000}",
    "\\ff",
    "(;",
    ";)",
    ";;",
    "0x",
    "nan:0x1",
    "nan:0x7fffffffffffff",
    "inf",
    "-",
    "99999999999999999999999999",
    "0x1p+1024",
    "1e400",
    "(memory 65536)",
    "(memory 1 1)",
    "(table 100000000 funcref)",
    "(export \"__plwasm_x\" (func 0))",
    "(start 0)",
    "(data (i32.const 0) \"abc\")",
    "(@custom \"plwasm.abi\" \"2\")",
    "(import \"plwasm\" \"log\" (func (param i32 i32 i32)))",
    "(import \"env\" \"f\" (func))",
    "(type (func))",
    "v128.const i32x4 0 0 0 0",
    "memory.grow",
    "call 4294967295",
    "local.get 1000000",
    "br 100000",
    "\u{fffd}",
    "é",
    "\u{1F980}",
    "(rec)",
    "(tag)",
    "(memory i64 1)",
];

/// 1 to 3 mutations of WAT text (kept valid UTF-8, without NUL): deleted or duplicated spans,
/// inserted tokens, deep nesting, truncation, swapped lines, edge numbers.
pub fn mutate_wat(rng: &mut Rng, text: &str) -> (String, Vec<String>) {
    let mut chars: Vec<char> = text.chars().collect();
    let mut done = Vec::new();
    for _ in 0..rng.range(1, 3) {
        if chars.is_empty() {
            chars = "(module)".chars().collect();
        }
        let pos = rng.below(chars.len() + 1).min(chars.len());
        match rng.range(0, 8) {
            0 => {
                let n = (rng.range(1, 40) as usize).min(chars.len() - pos);
                chars.drain(pos..pos + n);
                done.push(format!("delete {n} chars at {pos}"));
            }
            1 => {
                let n = (rng.range(1, 200) as usize).min(chars.len() - pos);
                let span: Vec<char> = chars[pos..pos + n].to_vec();
                chars.splice(pos..pos, span);
                done.push(format!("duplicate {n} chars at {pos}"));
            }
            2 | 3 => {
                let t = rng.pick(WAT_TOKENS);
                chars.splice(pos..pos, format!(" {t} ").chars());
                done.push(format!("insert {t:?} at {pos}"));
            }
            4 => {
                // Deep nesting: the text parser and the compiler must not overflow a stack.
                let depth = *rng.pick(&[100usize, 10_000, 100_000, 300_000]);
                let (open, close) = *rng.pick(&[
                    ("(block ", ")"),
                    ("(", ")"),
                    ("(i32.add ", ")"),
                    ("(loop ", ")"),
                ]);
                let balanced = rng.chance(70);
                let mut s = open.repeat(depth);
                if balanced {
                    s.push_str(&close.repeat(depth));
                }
                chars.splice(pos..pos, s.chars());
                done.push(format!(
                    "insert {depth} x {open:?} (balanced: {balanced}) at {pos}"
                ));
            }
            5 => {
                chars.truncate(pos);
                done.push(format!("truncate at {pos}"));
            }
            6 => {
                let t = rng.pick(&[
                    "0",
                    "-1",
                    "4294967295",
                    "4294967296",
                    "-2147483649",
                    "18446744073709551615",
                    "0x8000000000000000",
                    "nan",
                    "-inf",
                    "1_000",
                    "0x_1",
                ]);
                // Replace the next number after pos.
                if let Some(start) = (pos..chars.len()).find(|&i| chars[i].is_ascii_digit()) {
                    let end = (start..chars.len())
                        .find(|&i| !chars[i].is_ascii_alphanumeric())
                        .unwrap_or(chars.len());
                    chars.splice(start..end, t.chars());
                    done.push(format!("number at {start} -> {t}"));
                }
            }
            _ => {
                let lines: Vec<String> = chars
                    .iter()
                    .collect::<String>()
                    .lines()
                    .map(String::from)
                    .collect();
                if lines.len() >= 2 {
                    let i = rng.below(lines.len() - 1);
                    let mut l = lines.clone();
                    l.swap(i, i + 1);
                    chars = l.join("\n").chars().collect();
                    done.push(format!("swap lines {i} and {}", i + 1));
                }
            }
        }
    }
    (chars.into_iter().filter(|c| *c != '\0').collect(), done)
}
