//! Per-backend cache of compiled modules and their instances.
//!
//! One [`Instantiated`](super::instance::Instantiated) (with its own Wasmer `Store`) per stored module name and role, and one per
//! inline module body (keyed by the SHA-256 of its text) and role: linear memory and globals left
//! by one role's calls are never visible to another role's. Instances are reused across calls and
//! statements. A stored module's entry remembers the catalog [`generation`] at which its SHA-256
//! was last checked against the catalog; when the generation moves, the next resolution re-reads
//! the catalog (SHA-256 only) and recompiles only if the bytes changed.
//!
//! An instance that trapped is discarded: its memory may be half-updated. The next call builds a
//! fresh one from the cached compiled module.
//!
//! Compiled modules are kept for the life of the backend, by SHA-256: Wasmer frees machine code
//! only with its engine, so dropping a module would free nothing, and making it again (from its
//! artifact or by compiling) would take new code memory each time.
//!
//! The cache is bounded by `wasm.cache_memory`: the linear memory of every instance this
//! backend has (cached, pinned by a statement, or held by a call site) plus the compiled code it
//! keeps. When it is over, idle instances (held by nothing but the cache) are evicted, least
//! recently used first; instances in use never are, and code cannot be: the budget may be
//! exceeded while they alone exceed it. [`rows`] lists what it holds (`wasm.cache`).
//!
//! [`generation`]: crate::catalog::generation

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use pgrx::pg_sys;
use sha2::{Digest, Sha256};
use wasmer::Module;

use crate::catalog;
use crate::catalog::privileges;
use crate::errors::PlWasmError;
use crate::gucs;
use crate::runtime::instance::Instantiated;
use crate::runtime::statement;
use crate::runtime::{self};

/// A verified generation no catalog generation equals: the entry must be checked again.
pub(super) const UNVERIFIED: u64 = u64::MAX;

/// Inline modules kept per backend before the inline cache is cleared.
const MAX_INLINE_MODULES: usize = 256;

/// Instances are per role: (module name or inline SHA-256, role).
type Key = (String, pg_sys::Oid);

fn key(name: &str) -> Key {
    (name.to_string(), privileges::current_user())
}

/// How an instance's compiled code was obtained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// Compiled by this backend.
    #[default]
    Compiled,
    /// Deserialized from the module's stored artifact.
    Artifact,
    /// Taken from this backend's cache (a previous instance of the same code).
    Cache,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compiled => "compiled",
            Self::Artifact => "artifact",
            Self::Cache => "cache",
        }
    }
}

/// What the cache records of an instance's use.
#[derive(Default)]
pub struct Usage {
    /// Resolutions this instance served from the cache.
    hits: Cell<u64>,
    /// Order of last use (a per-backend counter), for eviction.
    last_used: Cell<u64>,
    /// When it was last resolved.
    last_used_at: Cell<pg_sys::TimestampTz>,
    source: Cell<Source>,
}

/// Record a use of `entry` (a hit when it was served from the cache).
fn touch(entry: &Instantiated, hit: bool) {
    let order = USES.with(|uses| {
        uses.set(uses.get() + 1);
        uses.get()
    });
    entry.usage.last_used.set(order);
    // SAFETY: reads the clock.
    entry
        .usage
        .last_used_at
        .set(unsafe { pg_sys::GetCurrentTimestamp() });
    if hit {
        entry.usage.hits.set(entry.usage.hits.get() + 1);
    }
}

#[derive(Default)]
struct Cache {
    stored: HashMap<Key, Rc<Instantiated>>,
    inline: HashMap<Key, Rc<Instantiated>>,
    /// Every module this backend compiled or deserialized, by SHA-256, with the engine it was
    /// made by ([`runtime::engine_epoch`]); kept for the backend's life (see the module docs).
    modules: HashMap<String, (u64, Module)>,
    /// Bytes of compiled code of each module (its serialized size), by SHA-256.
    code_sizes: HashMap<String, u64>,
    /// The version (SHA-256 and module) each running statement resolved for a stored module,
    /// whatever the role (see [`stored`]).
    versions: HashMap<(u64, String), (String, Module)>,
    /// The instance each running statement resolved for a stored module and role.
    pins: HashMap<(u64, Key), Rc<Instantiated>>,
    /// Every instance made, for accounting; dead references are pruned when it is counted.
    all: Vec<Weak<Instantiated>>,
}

impl Cache {
    /// Every instance the cache maps, with whether it is a stored module's.
    fn entries(&self) -> impl Iterator<Item = (&Key, &Rc<Instantiated>, bool)> {
        let stored = self.stored.iter().map(|(k, e)| (k, e, true));
        stored.chain(self.inline.iter().map(|(k, e)| (k, e, false)))
    }

    /// Every live instance of this backend.
    fn live(&mut self) -> Vec<Rc<Instantiated>> {
        let mut live = Vec::with_capacity(self.all.len());
        self.all.retain(|weak| match weak.upgrade() {
            Some(instance) => {
                live.push(instance);
                true
            }
            None => false,
        });
        live
    }

    /// Bytes this backend holds: linear memory of its instances, compiled code of its modules.
    fn bytes(&mut self) -> u64 {
        let memory: u64 = self.live().iter().map(|e| e.memory_bytes()).sum();
        let code: u64 = self.code_sizes.values().sum();
        memory + code
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    /// Uses recorded so far (the order of [`Usage::last_used`]).
    static USES: Cell<u64> = const { Cell::new(0) };
    /// Instances and kept modules evicted to stay within `wasm.cache_memory`.
    static EVICTIONS: Cell<u64> = const { Cell::new(0) };
}

/// Make an instance of `module` (SHA-256 `sha256`), counted in the budget.
fn instantiate(
    label: &str,
    sha256: &str,
    module: Module,
    function: &str,
    source: Source,
) -> Result<Rc<Instantiated>, PlWasmError> {
    let entry = Rc::new(Instantiated::new(
        label,
        sha256.to_string(),
        module,
        function,
    )?);
    entry.usage.source.set(source);
    touch(&entry, false);
    CACHE.with(|c| c.borrow_mut().all.push(Rc::downgrade(&entry)));
    Ok(entry)
}

/// Keep `module` for the backend's life, with its code size (measured once, outside the
/// borrow: serializing takes a while).
fn remember(sha256: &str, module: &Module) {
    let known = CACHE.with(|c| c.borrow().code_sizes.contains_key(sha256));
    let size = (!known).then(|| module.serialize().map_or(0, |bytes| bytes.len() as u64));
    let epoch = runtime::engine_epoch();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(size) = size {
            c.code_sizes.insert(sha256.to_string(), size);
        }
        c.modules
            .insert(sha256.to_string(), (epoch, module.clone()));
    });
}

/// The module with `sha256` this backend already has, if its engine is the current one.
fn known_module(sha256: &str) -> Option<Module> {
    let epoch = runtime::engine_epoch();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        match c.modules.get(sha256) {
            Some((made, module)) if *made == epoch => Some(module.clone()),
            // Made by an engine that was dropped: never instantiate it with another.
            Some(_) => {
                c.modules.remove(sha256);
                None
            }
            None => None,
        }
    })
}

/// Map `entry` under `key` in the stored or inline map, then evict what the budget requires.
fn insert(key: Key, stored: bool, entry: &Rc<Instantiated>) {
    let replaced = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let map = if stored { &mut c.stored } else { &mut c.inline };
        map.insert(key, entry.clone())
    });
    drop(replaced);
    enforce_budget();
}

/// Evict until this backend is within `wasm.cache_memory`: idle instances, least recently used
/// first. Evicted instances are dropped after the cache is released.
fn enforce_budget() {
    let budget = gucs::cache_memory_bytes();
    let evicted: Vec<Rc<Instantiated>> = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let mut total = c.bytes();
        if total <= budget {
            return Vec::new();
        }
        let mut idle: Vec<(u64, Key, bool, u64)> = c
            .entries()
            .filter(|(_, e, _)| e.is_idle())
            .map(|(k, e, stored)| (e.usage.last_used.get(), k.clone(), stored, e.memory_bytes()))
            .collect();
        idle.sort_by_key(|(order, ..)| *order);
        let mut evicted = Vec::new();
        for (_, key, stored, memory) in idle {
            if total <= budget {
                break;
            }
            let map = if stored { &mut c.stored } else { &mut c.inline };
            if let Some(entry) = map.remove(&key) {
                evicted.push(entry);
                total = total.saturating_sub(memory);
            }
        }
        EVICTIONS.with(|e| e.set(e.get() + evicted.len() as u64));
        evicted
    });
    drop(evicted);
}

/// One row of `wasm.cache`.
pub struct Row {
    pub module: String,
    pub role: Option<pg_sys::Oid>,
    pub kind: &'static str,
    pub sha256: String,
    pub memory_bytes: i64,
    pub code_bytes: i64,
    pub in_use: bool,
    pub hits: i64,
    pub last_used: Option<pg_sys::TimestampTz>,
    pub source: Option<&'static str>,
}

/// What this backend holds, as far as the current user may see: the instances of roles it has
/// the privileges of (all for a superuser) — cached, or held only by a running statement or a
/// call site (kind `detached`: an older version, or a fresh instance after a trap) — and the
/// compiled modules no instance uses (kind `code`, no role).
pub fn rows() -> Vec<Row> {
    release_ended();
    let user = privileges::current_user();
    let visible = |role: pg_sys::Oid| {
        // SAFETY: a catalog check of role membership.
        role == user || unsafe { pg_sys::has_privs_of_role(user, role) }
    };
    let (live, mapped, modules) = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let mapped: HashMap<*const Instantiated, bool> = c
            .entries()
            .map(|(_, e, stored)| (Rc::as_ptr(e), stored))
            .collect();
        let modules: Vec<(String, i64)> = c
            .modules
            .keys()
            .map(|sha| {
                (
                    sha.clone(),
                    c.code_sizes.get(sha).copied().unwrap_or(0) as i64,
                )
            })
            .collect();
        (c.live(), mapped, modules)
    });
    let code = |sha: &str| {
        modules
            .iter()
            .find(|(s, _)| s == sha)
            .map_or(0, |(_, size)| *size)
    };
    let mut rows: Vec<Row> = live
        .iter()
        .filter(|e| visible(e.role()))
        .map(|e| Row {
            module: e.label.clone(),
            role: Some(e.role()),
            kind: match mapped.get(&Rc::as_ptr(e)) {
                Some(true) => "stored",
                Some(false) => "inline",
                None => "detached",
            },
            sha256: e.sha256.clone(),
            memory_bytes: e.memory_bytes() as i64,
            code_bytes: code(&e.sha256),
            // The cache's reference, and `live`'s own, do not count as a use.
            in_use: Rc::strong_count(e) > 1 + usize::from(mapped.contains_key(&Rc::as_ptr(e))),
            hits: e.usage.hits.get() as i64,
            last_used: Some(e.usage.last_used_at.get()),
            source: Some(e.usage.source.get().as_str()),
        })
        .collect();
    let used: std::collections::HashSet<&str> = live.iter().map(|e| e.sha256.as_str()).collect();
    rows.extend(
        modules
            .iter()
            .filter(|(sha, _)| !used.contains(sha.as_str()))
            .map(|(sha, size)| Row {
                module: String::new(),
                role: None,
                kind: "code",
                sha256: sha.clone(),
                memory_bytes: 0,
                code_bytes: *size,
                in_use: false,
                hits: 0,
                last_used: None,
                source: None,
            }),
    );
    rows.sort_by(|a, b| {
        (a.kind, &a.module, a.role.map(u32::from)).cmp(&(b.kind, &b.module, b.role.map(u32::from)))
    });
    rows
}

/// Bytes this backend holds now, and evictions so far (for `wasm.cache_usage()`).
pub fn totals() -> (u64, u64) {
    release_ended();
    let bytes = CACHE.with(|c| c.borrow_mut().bytes());
    (bytes, EVICTIONS.with(Cell::get))
}

/// Forget dead instances (after a trap). Also called while unwinding: never panics on a busy
/// cache. (Their module stays known: see [`remember`].)
pub(super) fn retire() {
    CACHE.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return;
        };
        // Other roles' instances are not this role's to drop (is_alive would say they are dead
        // for the current role).
        cache.stored.retain(|_, e| e.is_current());
        cache.inline.retain(|_, e| e.is_current());
    });
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The instance of stored module `name` for the running statement: the version this statement
/// first resolved, so that a module replaced while a statement runs never serves it two
/// versions (see `statement.rs`); for a statement's first use, the latest committed version.
/// `function` names the SQL function being resolved, for messages.
pub fn stored(name: &str, function: &str) -> Result<Rc<Instantiated>, PlWasmError> {
    release_ended();
    let statement = statement::current();
    if statement == 0 {
        return latest(name, function);
    }
    let pin = (statement, key(name));
    let (pinned, version) = CACHE.with(|c| {
        let c = c.borrow();
        (
            c.pins.get(&pin).cloned(),
            c.versions.get(&(statement, name.to_string())).cloned(),
        )
    });
    if let Some(pinned) = pinned.filter(|p| p.is_alive()) {
        touch(&pinned, true);
        return Ok(pinned);
    }
    let entry = match version {
        // The statement has this module's version already (for this role or another): this
        // role's cached instance if it is of that version, else a fresh one of the same code
        // (after a trap, or when the cache moved on to a newer version).
        Some((sha256, module)) => {
            let cached = CACHE.with(|c| c.borrow().stored.get(&key(name)).cloned());
            match cached.filter(|e| e.is_alive() && e.sha256 == sha256) {
                Some(cached) => {
                    touch(&cached, true);
                    cached
                }
                None => match known_module(&sha256) {
                    Some(_) => instantiate(name, &sha256, module, function, Source::Cache)?,
                    // Its engine was dropped (after Wasmer failed): the latest version.
                    None => latest(name, function)?,
                },
            }
        }
        None => latest(name, function)?,
    };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.pins.insert(pin, entry.clone());
        c.versions
            .entry((statement, name.to_string()))
            .or_insert_with(|| (entry.sha256.clone(), entry.module.clone()));
    });
    Ok(entry)
}

/// This backend changed module `name` (load, replace, rollback, unload): its running
/// statements stop holding the version they had, so their next resolution sees the change, as
/// its author expects (the pins are for other sessions' changes, which a statement must not
/// see half-way).
pub fn unpin(name: &str) {
    let unpinned: Vec<_> = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.versions.retain(|(_, n), _| n != name);
        c.pins.extract_if(|(_, (n, _)), _| n == name).collect()
    });
    drop(unpinned);
}

/// Unpin the instances of the statements that ended, and evict what the budget requires now
/// that they may be idle.
fn release_ended() {
    let ended = statement::ended();
    if ended.is_empty() {
        return;
    }
    // Dropped outside the borrow.
    let unpinned: Vec<_> = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.versions.retain(|(s, _), _| !ended.contains(s));
        c.pins.extract_if(|(s, _), _| ended.contains(s)).collect()
    });
    drop(unpinned);
    enforce_budget();
}

/// The instance of stored module `name`, current as of the latest catalog state.
fn latest(name: &str, function: &str) -> Result<Rc<Instantiated>, PlWasmError> {
    // Read the generation before the catalog: a change racing with this look-up moves the
    // generation again and forces another check.
    let generation = catalog::generation();
    let cached = CACHE.with(|c| c.borrow().stored.get(&key(name)).cloned());
    if let Some(entry) = &cached {
        if entry.is_alive() && entry.verified_generation.get() == generation {
            touch(entry, true);
            return Ok(entry.clone());
        }
    }
    let Some(current) = catalog::lookup(name, false) else {
        if let Some(entry) = cached {
            entry.mark_stale();
            CACHE.with(|c| c.borrow_mut().stored.remove(&key(name)));
        }
        return Err(PlWasmError::ModuleNotFound {
            name: name.to_string(),
        });
    };
    // Only an answer from the latest snapshot vouches for the instance at this generation;
    // otherwise the next resolution asks again.
    let verified = if current.latest {
        generation
    } else {
        UNVERIFIED
    };
    if let Some(entry) = &cached {
        if entry.is_alive() && entry.sha256 == current.sha256 {
            entry.verified_generation.set(verified);
            touch(entry, true);
            return Ok(entry.clone());
        }
        entry.mark_stale();
    }
    let mut artifact = Ok(());
    let mut source = Source::Cache;
    // The same code made before (e.g. wasm.max_memory changed, or a trap): no need to recompile.
    let reused = known_module(&current.sha256).or_else(|| {
        source = Source::Artifact;
        catalog::artifacts::load(name, &current.sha256)
            .map_err(|missing| artifact = Err(missing))
            .ok()
    });
    let module = match reused {
        Some(module) => module,
        None => {
            source = Source::Compiled;
            let stored =
                catalog::lookup(name, true).ok_or_else(|| PlWasmError::ModuleNotFound {
                    name: name.to_string(),
                })?;
            let bytes = stored.bytes.unwrap_or_default();
            let module = runtime::compile(&bytes).map_err(|reason| PlWasmError::InvalidModule {
                module: name.to_string(),
                reason,
            })?;
            // No usable artifact: have a background worker store one for the next backends.
            if artifact == Err(catalog::artifacts::NoArtifact::Missing) {
                catalog::refresh::request(name, &stored.sha256);
            }
            module
        }
    };
    if source != Source::Cache {
        remember(&current.sha256, &module);
    }
    let entry = instantiate(name, &current.sha256, module, function, source)?;
    entry.verified_generation.set(verified);
    insert(key(name), true, &entry);
    Ok(entry)
}

/// Compile WebAssembly text to binary (interruptibly); errors carry line and column.
pub fn wat_to_wasm(source: &str) -> Result<Vec<u8>, PlWasmError> {
    runtime::wat_to_wasm(source).map_err(|message| PlWasmError::WatSyntax { message })
}

/// Refuse a module (or module text) larger than `wasm.max_module_size`.
pub fn check_size(label: &str, size: usize) -> Result<(), PlWasmError> {
    let limit = gucs::MAX_MODULE_SIZE.get().max(0) as usize;
    if size > limit {
        return Err(PlWasmError::ModuleTooLarge {
            module: label.to_string(),
            size,
            limit,
        });
    }
    Ok(())
}

/// The instance of an inline module written in WebAssembly text. `refresh`: ask the background
/// worker to store its artifact if this backend has to compile it (not for functions in
/// temporary schemas, which the worker never sees).
pub fn inline(
    source: &str,
    function: &str,
    refresh: bool,
) -> Result<Rc<Instantiated>, PlWasmError> {
    let sha256 = sha256_hex(source.as_bytes());
    let cached = CACHE.with(|c| c.borrow().inline.get(&key(&sha256)).cloned());
    if let Some(entry) = &cached {
        if entry.is_alive() {
            touch(entry, true);
            return Ok(entry.clone());
        }
        entry.mark_stale();
    }
    let mut obtained = Source::Cache;
    let module = match known_module(&sha256) {
        Some(module) => module,
        None => {
            check_size("(inline)", source.len())?;
            let artifact = catalog::artifacts::inline_name(&sha256);
            obtained = Source::Artifact;
            match catalog::artifacts::load(&artifact, &sha256) {
                Ok(module) => module,
                Err(missing) => {
                    obtained = Source::Compiled;
                    let bytes = wat_to_wasm(source).map_err(|e| PlWasmError::InvalidBody {
                        function: function.to_string(),
                        reason: e.to_string(),
                    })?;
                    let module =
                        runtime::compile(&bytes).map_err(|reason| PlWasmError::InvalidBody {
                            function: function.to_string(),
                            reason: format!("invalid inline module: {reason}"),
                        })?;
                    // No artifact for this text yet: a background worker stores one.
                    if refresh && missing == catalog::artifacts::NoArtifact::Missing {
                        catalog::refresh::request("(inline)", &sha256);
                    }
                    module
                }
            }
        }
    };
    if obtained != Source::Cache {
        remember(&sha256, &module);
    }
    let entry = instantiate("(inline)", &sha256, module, function, obtained)?;
    // Dropped outside the borrow, like evicted instances.
    let cleared = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.inline.len() >= MAX_INLINE_MODULES {
            std::mem::take(&mut c.inline)
        } else {
            HashMap::new()
        }
    });
    drop(cleared);
    insert(key(&sha256), false, &entry);
    Ok(entry)
}
