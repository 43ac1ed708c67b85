//! Wasm backtraces as a user reads them in an ERROR's DETAIL: function names from the module's
//! name section, demangled (Rust's v0 and legacy schemes); a run of frames of the same function
//! (recursion) collapsed into one line and a count; at most [`MAX_LINES`] lines; and `file:line`
//! from the module's DWARF line tables when it carries them (line programs only: bounded work
//! with no recursion, whatever the DWARF says) (Rust: `debug = "line-tables-only"`
//! or more in the build profile; C: `-g`). Paths under the directory the module was compiled in
//! are shown relative to it, like Rust's panic locations.
//!
//! Everything shown comes from the module, which is untrusted: names and paths are cut to
//! [`MAX_NAME_CHARS`] and control characters replaced, so a module cannot forge DETAIL lines.

use std::rc::Rc;

use addr2line::gimli::{self, Reader as _};
use wasmer::{FrameInfo, Module};

use crate::runtime::instrument::CODE_OFFSET_SECTION;

/// Lines of a rendered backtrace, including the last "... more frames" line.
pub const MAX_LINES: usize = 20;
/// Longest function name or path shown (in characters).
pub const MAX_NAME_CHARS: usize = 160;
/// DWARF larger than this (all `.debug_*` sections together) is not read.
const MAX_DWARF_BYTES: usize = 16 << 20;
/// DWARF with more compilation units than this is not read (a Rust module with its standard
/// library has a few hundred; each unit costs a parse when the line tables are set up).
const MAX_UNITS: usize = 10_000;

/// The backtrace of `frames` (innermost first) of a call into `module`, one frame per line.
pub fn render(module: &Module, frames: &[FrameInfo]) -> String {
    if frames.is_empty() {
        // (Wasmer records none for its own stack overflow: no DWARF to read for nothing.)
        return String::new();
    }
    let lines = SourceLines::of(module);
    // Each line, with how many of `frames` are fully shown once it is.
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut shown_frames = 0;
    while shown_frames < frames.len() && out.len() <= MAX_LINES {
        let frame = &frames[shown_frames];
        let name = frame.function_name().map_or("<unnamed>".into(), demangled);
        let place = lines
            .as_ref()
            .and_then(|lines| lines.locate(frame.module_offset()))
            .unwrap_or_else(|| {
                format!(
                    "func {}, offset {:#x}",
                    frame.func_index(),
                    frame.module_offset()
                )
            });
        out.push((format!("  at {name} ({place})"), shown_frames + 1));
        let run = frames[shown_frames..]
            .iter()
            .take_while(|f| f.func_index() == frame.func_index())
            .count();
        shown_frames += 1;
        if run > 1 {
            shown_frames += run - 1;
            out.push((
                format!("  ... {} more frames of {name}", run - 1),
                shown_frames,
            ));
        }
    }
    if out.len() > MAX_LINES || shown_frames < frames.len() {
        out.truncate(MAX_LINES - 1);
        let shown = out.last().map_or(0, |(_, shown)| *shown);
        out.push((
            format!("  ... {} more frames", frames.len() - shown),
            frames.len(),
        ));
    }
    out.into_iter()
        .map(|(line, _)| line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A function name from the module, demangled (Rust) and [`shown`].
fn demangled(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        // `{:#}` leaves out the hash suffix of legacy-mangled names.
        Ok(demangled) => shown(&format!("{demangled:#}")),
        Err(_) => shown(name),
    }
}

/// `text` cut to [`MAX_NAME_CHARS`], with control and invisible format characters replaced.
pub fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_NAME_CHARS)
        .map(|c| if is_invisible(c) { '?' } else { c })
        .collect();
    if text.chars().count() > MAX_NAME_CHARS {
        out.push('…');
    }
    out
}

/// Control characters, and the format characters that reorder or hide text (bidirectional
/// overrides and isolates, zero-width characters, soft hyphen, byte order mark).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

type Reader = gimli::EndianRcSlice<gimli::LittleEndian>;

/// A module's DWARF line tables, ready for lookups.
struct SourceLines {
    context: addr2line::Context<Reader>,
    /// Where the code section's contents start in the module: DWARF addresses count from there.
    code_offset: usize,
    /// The directories the module's compilation units were compiled in (`DW_AT_comp_dir`).
    compile_dirs: Vec<String>,
}

impl SourceLines {
    /// The line tables of `module`, if it has DWARF and plwasm recorded its code offset.
    fn of(module: &Module) -> Option<Self> {
        let code_offset = module.custom_sections(CODE_OFFSET_SECTION).next()?;
        let code_offset = u32::from_le_bytes(code_offset.as_ref().try_into().ok()?) as usize;
        module.custom_sections(".debug_line").next()?;
        let mut total = 0usize;
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            let data: Rc<[u8]> = module
                .custom_sections(id.name())
                .next()
                .map(Rc::from)
                .unwrap_or_else(|| Rc::from(&[][..]));
            total += data.len();
            Ok(Reader::new(data, gimli::LittleEndian))
        };
        let dwarf = gimli::Dwarf::load(load).ok()?;
        if total > MAX_DWARF_BYTES {
            return None;
        }
        let mut count = dwarf.units();
        let mut units_seen = 0;
        while let Ok(Some(_)) = count.next() {
            units_seen += 1;
            if units_seen > MAX_UNITS {
                return None;
            }
        }
        let mut compile_dirs = Vec::new();
        let mut units = dwarf.units();
        while let Ok(Some(header)) = units.next() {
            if let Ok(unit) = dwarf.unit(header) {
                if let Some(dir) = unit.comp_dir.as_ref() {
                    if let Ok(dir) = dir.to_string_lossy() {
                        if !compile_dirs.iter().any(|d: &String| *d == dir) {
                            compile_dirs.push(dir.into_owned());
                        }
                    }
                }
            }
        }
        Some(Self {
            context: addr2line::Context::from_dwarf(dwarf).ok()?,
            code_offset,
            compile_dirs,
        })
    }

    /// The source location of the instruction at `module_offset`, from the line tables only:
    /// where code was inlined, the inlined code's own line. (Inlined-function entries are not
    /// read: a module's DWARF is untrusted, and addr2line walks their nesting recursively.)
    fn locate(&self, module_offset: usize) -> Option<String> {
        let address = module_offset.checked_sub(self.code_offset)? as u64;
        let location = self.context.find_location(address).ok()??;
        self.place(&location)
    }

    /// `file:line` of `location`, the file relative to the compile directory when under it.
    fn place(&self, location: &addr2line::Location) -> Option<String> {
        let file = location.file?;
        let file = self
            .compile_dirs
            .iter()
            .find_map(|dir| file.strip_prefix(dir.as_str())?.strip_prefix('/'))
            .unwrap_or(file);
        Some(match location.line {
            Some(line) => format!("{}:{line}", shown(file)),
            None => shown(file),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_cuts_and_neutralizes() {
        assert_eq!(shown("a\nb"), "a?b");
        assert_eq!(shown("a\u{202E}b\u{200B}"), "a?b?");
        let long = "x".repeat(MAX_NAME_CHARS + 5);
        assert_eq!(shown(&long).chars().count(), MAX_NAME_CHARS + 1);
    }
}
