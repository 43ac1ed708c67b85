//! What a `.wasm` file says about itself before it is sent: the functions its `plwasm.udfs`
//! sections describe (one JSON object per line, written by the SDK's `#[udf]`) and the ABI its
//! `plwasm.abi` sections name. The server checks both again; reading them here lets `deploy`
//! refuse a file early and describe what it will create.

use std::path::Path;

use wasmparser::{Parser, Payload};

/// The plwasm ABI this CLI deploys to (`docs/abi.md`).
pub const ABI_VERSION: u32 = 1;

/// A module read from disk.
pub struct ModuleFile {
    pub bytes: Vec<u8>,
    /// The functions it describes, as `name(type, ...)`, in the order of the description.
    pub described: Vec<String>,
    /// A version its `plwasm.abi` sections name other than [`ABI_VERSION`].
    pub foreign_abi: Option<String>,
}

/// Read and inspect the module at `path`.
pub fn read(path: &Path) -> Result<ModuleFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !bytes.starts_with(b"\0asm") {
        return Err(format!(
            "{} is not a WebAssembly module (it does not start with \\0asm)",
            path.display()
        ));
    }
    let mut udfs = Vec::new();
    let mut abi = Vec::new();
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload {
            Ok(Payload::CustomSection(reader)) if reader.name() == "plwasm.udfs" => {
                udfs.extend_from_slice(reader.data());
            }
            Ok(Payload::CustomSection(reader)) if reader.name() == "plwasm.abi" => {
                abi.extend_from_slice(reader.data());
                abi.push(b'\n');
            }
            Ok(_) => {}
            Err(e) => return Err(format!("{} is not a valid module: {e}", path.display())),
        }
    }
    let described = String::from_utf8_lossy(&udfs)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(signature)
        .collect::<Result<Vec<_>, _>>()?;
    let foreign_abi = String::from_utf8_lossy(&abi)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && line.parse::<u32>() != Ok(ABI_VERSION))
        .map(str::to_string);
    Ok(ModuleFile {
        bytes,
        described,
        foreign_abi,
    })
}

/// `name(type, ...)` of one description line.
fn signature(line: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| format!("the module's plwasm.udfs section has a bad line ({e}): {line}"))?;
    let name = v["name"].as_str().unwrap_or("?");
    let args = v["args"]
        .as_array()
        .map(|args| {
            args.iter()
                .map(|a| a["type"].as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Ok(format!("{name}({args})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_of_descriptions() {
        assert_eq!(
            signature(r#"{"name":"add","args":[{"name":"a","type":"integer"},{"name":"b","type":"bigint"}],"returns":"integer"}"#)
                .unwrap(),
            "add(integer, bigint)"
        );
        assert!(signature("not json").is_err());
    }
}
