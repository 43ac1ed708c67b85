//! `plwasm build`: compile a UDF crate to a `.wasm` module, with cargo's own progress on the
//! terminal. Like `scripts/build-wasm.sh`: rustup's wasm target when it is installed, otherwise
//! Debian's offline toolchain (`rustc-web` with `-Zbuild-std`, set up by
//! `scripts/setup.sh --wasm-toolchains`), which compiles the standard library for wasm on the
//! first build of a target directory; that build says so before it starts.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's toolchain keeps the standard library's sources (package `rust-web-src`).
const DEBIAN_RUST_SRC: &str = "/usr/lib/rustlib/src/rust/library";

/// Build the crate in `dir` for `target`; returns the module's path.
pub fn build(dir: &Path, target: &str) -> Result<PathBuf, String> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!("{} has no Cargo.toml", dir.display()));
    }
    let (package, target_dir) = metadata(&manifest)?;
    let rustup = rustup_has_target(target);
    let std_built = target_dir
        .join(target)
        .join("release/deps")
        .read_dir()
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libcore-") && name.ends_with(".rlib")
            })
        })
        .unwrap_or(false);
    let mut cargo;
    if rustup {
        eprintln!("plwasm build: {package} for {target} (rustup's {target} target)");
        cargo = Command::new("cargo");
    } else {
        if !Path::new(DEBIAN_RUST_SRC).is_dir() {
            return Err(format!(
                "no toolchain for {target}: `rustup target add {target}`, or install Debian's \
                 (bash scripts/setup.sh --wasm-toolchains)"
            ));
        }
        if !std_built {
            eprintln!(
                "plwasm build: first build of {package} for {target}: compiling Rust's standard \
                 library for wasm as well (Debian's toolchain); this takes a few minutes, once \
                 per target directory"
            );
        } else {
            eprintln!("plwasm build: {package} for {target} (Debian's toolchain)");
        }
        let mut flags = Vec::new();
        if which("rust-lld").is_none() {
            let linker = which("wasm-ld-22")
                .or_else(|| which("wasm-ld"))
                .ok_or("no wasm linker: install lld (bash scripts/setup.sh --wasm-toolchains)")?;
            flags.push(format!("-C linker={}", linker.display()));
        }
        if target == "wasm32-wasip1" {
            flags.push("-L /usr/lib/wasm32-wasi".into());
        }
        cargo = Command::new("/usr/bin/cargo");
        cargo
            .env("RUSTC", "/usr/bin/rustc")
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", flags.join(" "))
            .arg("-Zbuild-std=std,panic_abort");
    }
    // Progress and diagnostics go to the terminal (stderr); cargo's JSON messages on stdout say
    // which file this build made, so a stale module of an earlier build is never picked.
    let output = cargo
        .arg("build")
        .arg("--release")
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target")
        .arg(target)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo build failed ({})", output.status));
    }
    let manifest = manifest
        .canonicalize()
        .map_err(|e| format!("{}: {e}", manifest.display()))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["manifest_path"]
                    .as_str()
                    .is_some_and(|p| Path::new(p) == manifest)
                && m["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            format!(
                "{package} builds no .wasm module: its lib must be a cdylib (crate-type = [\"cdylib\", \"rlib\"])"
            )
        })
}

/// The package name and target directory of the crate whose manifest is `manifest`.
fn metadata(manifest: &Path) -> Result<(String, PathBuf), String> {
    let output = Command::new("cargo")
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let manifest = manifest
        .canonicalize()
        .map_err(|e| format!("{}: {e}", manifest.display()))?;
    let package = v["packages"]
        .as_array()
        .and_then(|packages| {
            packages.iter().find(|p| {
                p["manifest_path"]
                    .as_str()
                    .is_some_and(|m| Path::new(m) == manifest)
            })
        })
        .and_then(|p| p["name"].as_str())
        .ok_or("cargo metadata names no package for this manifest (a workspace root?)")?;
    let target_dir = v["target_directory"]
        .as_str()
        .ok_or("cargo metadata gives no target directory")?;
    Ok((package.to_string(), PathBuf::from(target_dir)))
}

fn rustup_has_target(target: &str) -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l == target)
        })
        .unwrap_or(false)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}
