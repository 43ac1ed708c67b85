//! Wasm backtraces as a user reads them in an ERROR's DETAIL: function names from the module's
//! name section, demangled (Rust's v0 and legacy schemes); a run of frames of the same function
//! (recursion) collapsed into one line and a count; at most [`MAX_LINES`] lines; and `file:line`
//! from the module's DWARF line tables when it carries them (Rust: `debug = "line-tables-only"`
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
const MAX_DWARF_BYTES: usize = 64 << 20;

/// The backtrace of `frames` (innermost first) of a call into `module`, one frame per line, and
/// with line tables one line more per function inlined at that point.
pub fn render(module: &Module, frames: &[FrameInfo]) -> String {
    let lines = SourceLines::of(module);
    // Each line, with how many of `frames` are fully shown once it is.
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut shown_frames = 0;
    while shown_frames < frames.len() && out.len() <= MAX_LINES {
        let frame = &frames[shown_frames];
        let name = frame.function_name().map_or("<unnamed>".into(), demangled);
        let mut source = lines
            .as_ref()
            .map(|lines| lines.locate(frame.module_offset()))
            .unwrap_or_default();
        // The function itself is the outermost source frame; the others were inlined into it.
        let own = source.pop().and_then(|(_, place)| place);
        let mut entries: Vec<(String, String)> = source
            .into_iter()
            .map(|(inlined, place)| {
                (
                    inlined.unwrap_or_else(|| "<inlined>".into()),
                    place.unwrap_or_else(|| "?".into()),
                )
            })
            .collect();
        entries.push((
            name.clone(),
            own.unwrap_or_else(|| {
                format!(
                    "func {}, offset {:#x}",
                    frame.func_index(),
                    frame.module_offset()
                )
            }),
        ));
        // An export wrapper and the function inlined into it often share a name: one line.
        entries.dedup_by(|outer, inner| outer.0 == inner.0);
        let last = entries.len() - 1;
        for (i, (function, place)) in entries.into_iter().enumerate() {
            let shown = shown_frames + usize::from(i == last);
            out.push((format!("  at {function} ({place})"), shown));
        }
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

/// `text` cut to [`MAX_NAME_CHARS`], with control characters replaced.
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_NAME_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX_NAME_CHARS {
        out.push('…');
    }
    out
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

    /// The source frames of the instruction at `module_offset`, innermost first: the functions
    /// inlined there, then the function itself; each with its name and `file:line`, when the
    /// line tables have them. Empty when they do not cover the instruction.
    fn locate(&self, module_offset: usize) -> Vec<(Option<String>, Option<String>)> {
        let mut found = Vec::new();
        let Some(address) = module_offset.checked_sub(self.code_offset) else {
            return found;
        };
        let Ok(mut frames) = self.context.find_frames(address as u64).skip_all_loads() else {
            return found;
        };
        while let Ok(Some(frame)) = frames.next() {
            let name = frame
                .function
                .as_ref()
                .and_then(|function| function.raw_name().ok())
                .map(|name| demangled(&name));
            let place = frame.location.as_ref().and_then(|l| self.place(l));
            found.push((name, place));
            if found.len() >= MAX_LINES {
                break;
            }
        }
        found
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
        let long = "x".repeat(MAX_NAME_CHARS + 5);
        assert_eq!(shown(&long).chars().count(), MAX_NAME_CHARS + 1);
    }
}
