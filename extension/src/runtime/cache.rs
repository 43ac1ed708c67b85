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
//! [`generation`]: crate::catalog::generation

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

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

#[derive(Default)]
struct Cache {
    stored: HashMap<Key, Rc<Instantiated>>,
    inline: HashMap<Key, Rc<Instantiated>>,
    /// Compiled modules of discarded instances, by SHA-256, so re-instantiating skips compiling.
    retired_modules: HashMap<String, Module>,
    /// The instance each running statement resolved for a stored module (see [`stored`]).
    pins: HashMap<(u64, Key), Rc<Instantiated>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Forget dead instances and keep `module` (the compiled code of one that was discarded), so
/// the next instance of it skips compiling. Also called while unwinding: never panics on a
/// busy cache.
pub(super) fn retire(module: Module, sha256: &str) {
    CACHE.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return;
        };
        cache.retired_modules.insert(sha256.to_string(), module);
        // Other roles' instances are not this role's to drop (is_alive would say they are dead
        // for the current role).
        cache.stored.retain(|_, e| e.is_current());
        cache.inline.retain(|_, e| e.is_current());
    });
}

fn take_retired(sha256: &str) -> Option<Module> {
    CACHE.with(|c| c.borrow_mut().retired_modules.remove(sha256))
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
    let (statement, ended) = statement::current();
    if !ended.is_empty() {
        // Dropped outside the borrow: an instance's drop may give its module back to the cache.
        let unpinned: Vec<_> = CACHE.with(|c| {
            c.borrow_mut()
                .pins
                .extract_if(|(s, _), _| ended.contains(s))
                .collect()
        });
        drop(unpinned);
    }
    if statement == 0 {
        return latest(name, function);
    }
    let pin = (statement, key(name));
    let pinned = CACHE.with(|c| c.borrow().pins.get(&pin).cloned());
    let entry = match pinned {
        Some(pinned) if pinned.is_alive() => return Ok(pinned),
        // The statement's instance trapped (and the statement caught the error), or a nested
        // statement moved the cache on to another version: a fresh instance of the same code.
        Some(pinned) => Rc::new(Instantiated::new(
            name,
            pinned.sha256.clone(),
            pinned.module.clone(),
            function,
        )?),
        None => latest(name, function)?,
    };
    CACHE.with(|c| c.borrow_mut().pins.insert(pin, entry.clone()));
    Ok(entry)
}

/// The instance of stored module `name`, current as of the latest catalog state.
fn latest(name: &str, function: &str) -> Result<Rc<Instantiated>, PlWasmError> {
    // Read the generation before the catalog: a change racing with this look-up moves the
    // generation again and forces another check.
    let generation = catalog::generation();
    let cached = CACHE.with(|c| c.borrow().stored.get(&key(name)).cloned());
    if let Some(entry) = &cached {
        if entry.is_alive() && entry.verified_generation.get() == generation {
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
    let mut reusable = None;
    if let Some(entry) = &cached {
        if entry.is_alive() && entry.sha256 == current.sha256 {
            entry.verified_generation.set(verified);
            return Ok(entry.clone());
        }
        entry.mark_stale();
        if entry.sha256 == current.sha256 {
            // Same code, new instance (e.g. wasm.max_memory changed): no need to recompile.
            reusable = Some(entry.module.clone());
        }
    }
    let mut artifact = Ok(());
    let reused = reusable
        .or_else(|| take_retired(&current.sha256))
        .or_else(|| {
            catalog::artifacts::load(name, &current.sha256)
                .map_err(|missing| artifact = Err(missing))
                .ok()
        });
    let module = match reused {
        Some(module) => module,
        None => {
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
    let entry = Rc::new(Instantiated::new(name, current.sha256, module, function)?);
    entry.verified_generation.set(verified);
    CACHE.with(|c| c.borrow_mut().stored.insert(key(name), entry.clone()));
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
            return Ok(entry.clone());
        }
        entry.mark_stale();
    }
    let reusable = cached.map(|entry| entry.module.clone());
    let module = match reusable.or_else(|| take_retired(&sha256)) {
        Some(module) => module,
        None => {
            check_size("(inline)", source.len())?;
            let artifact = catalog::artifacts::inline_name(&sha256);
            match catalog::artifacts::load(&artifact, &sha256) {
                Ok(module) => module,
                Err(missing) => {
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
    let entry = Rc::new(Instantiated::new(
        "(inline)",
        sha256.clone(),
        module,
        function,
    )?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.inline.len() >= MAX_INLINE_MODULES {
            c.inline.clear();
        }
        c.inline.insert(key(&sha256), entry.clone());
    });
    Ok(entry)
}
