//! DWARF for a module's code, as custom sections: plwasm reads `.debug_*` sections to put
//! source lines into trap backtraces, so a module's DWARF is untrusted input too. Made with
//! gimli's writer (line programs over the module's function bodies, odd file names and
//! directories, lines and columns at their limits, deeply nested inlined subroutines), then
//! sometimes damaged.

use gimli::write::{
    Address, AttributeValue, DwarfUnit, EndianVec, LineProgram, LineString, Sections,
};
use gimli::{Encoding, Format, LineEncoding, LittleEndian};
use wasmparser::{Parser, Payload};

use crate::rng::Rng;

/// Where the code section's contents start (DWARF addresses count from there) and the range of
/// each function body.
fn code_ranges(bytes: &[u8]) -> Option<(usize, Vec<(usize, usize)>)> {
    let mut start = None;
    let mut bodies = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::CodeSectionStart {
                unchecked_range, ..
            } => start = Some(unchecked_range.start as usize),
            Payload::CodeSectionEntry(body) => {
                let r = body.range();
                bodies.push((r.start as usize, r.end as usize));
            }
            _ => {}
        }
    }
    Some((start?, bodies))
}

/// A name from the usual to the hostile: paths, control and bidi characters, very long.
fn name(rng: &mut Rng, what: &str) -> Vec<u8> {
    let s = match rng.range(0, 9) {
        0 => format!("/home/user/project/src/{what}.rs"),
        1 => format!("../../../../etc/{what}"),
        2 => format!("{what}\u{202e}sr.txt"),
        3 => format!("{what}\n\tinjected line"),
        4 => format!("{}{what}", "d/".repeat(rng.range(100, 3000) as usize)),
        5 => format!("ünïcødé/🦀/{what}.c"),
        6 => format!("C:\\Windows\\{what}.c"),
        7 => format!("{what}\u{7}\u{1b}[31m"),
        _ => format!("src/{what}.rs"),
    };
    // gimli refuses empty strings and NUL bytes.
    let v: Vec<u8> = s.into_bytes().into_iter().filter(|b| *b != 0).collect();
    if v.is_empty() {
        b"x".to_vec()
    } else {
        v
    }
}

fn line_number(rng: &mut Rng) -> u64 {
    match rng.range(0, 5) {
        0 => 0,
        1 => u32::MAX as u64,
        2 => u64::MAX >> 1,
        _ => rng.range(1, 5000),
    }
}

/// The DWARF sections (name, contents) for `bytes`, or none when it has no code.
pub fn sections(rng: &mut Rng, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Some((code_start, bodies)) = code_ranges(bytes) else {
        return vec![];
    };
    if bodies.is_empty() {
        return vec![];
    }
    let encoding = Encoding {
        format: if rng.chance(20) {
            Format::Dwarf64
        } else {
            Format::Dwarf32
        },
        version: *rng.pick(&[2u16, 3, 4, 5, 5]),
        address_size: 4,
    };
    let mut dwarf = DwarfUnit::new(encoding);
    let comp_dir = name(rng, "build");
    let mut program = LineProgram::new(
        encoding,
        LineEncoding::default(),
        LineString::String(comp_dir.clone()),
        None,
        LineString::String(name(rng, "main")),
        None,
    );
    let dir = program.default_directory();
    let dirs: Vec<_> = std::iter::once(dir)
        .chain(
            (0..rng.range(0, 3))
                .map(|_| program.add_directory(LineString::String(name(rng, "dir")))),
        )
        .collect();
    let files: Vec<_> = (0..rng.range(1, 6))
        .map(|i| {
            let d = *rng.pick(&dirs);
            let file = name(rng, &format!("file{i}"));
            let file = if encoding.version >= 5 && rng.chance(50) {
                LineString::LineStringRef(dwarf.line_strings.add(file))
            } else {
                LineString::String(file)
            };
            program.add_file(file, d, None)
        })
        .collect();
    let code_len = bodies.last().map(|b| b.1 - code_start).unwrap_or(0) as u64;
    for &(start, end) in &bodies {
        program.begin_sequence(Some(Address::Constant((start - code_start) as u64)));
        let len = (end - start) as u64;
        let mut offset = 0;
        while offset < len {
            let row = program.row();
            row.address_offset = offset;
            row.file = *rng.pick(&files);
            row.line = line_number(rng);
            row.column = if rng.chance(10) {
                u32::MAX as u64
            } else {
                rng.range(0, 120)
            };
            program.generate_row();
            offset += rng.range(1, 24);
        }
        program.end_sequence(len);
    }
    dwarf.unit.line_program = program;
    let root = dwarf.unit.root();
    let entry = dwarf.unit.get_mut(root);
    entry.set(gimli::DW_AT_name, AttributeValue::String(name(rng, "unit")));
    let comp_dir = if rng.chance(50) {
        AttributeValue::StringRef(dwarf.strings.add(comp_dir))
    } else {
        AttributeValue::String(comp_dir)
    };
    let entry = dwarf.unit.get_mut(root);
    entry.set(gimli::DW_AT_comp_dir, comp_dir);
    entry.set(
        gimli::DW_AT_low_pc,
        AttributeValue::Address(Address::Constant(0)),
    );
    entry.set(gimli::DW_AT_high_pc, AttributeValue::Udata(code_len));
    // Subprograms, one with a deep chain of inlined subroutines (plwasm must not recurse
    // into them without bound).
    for (i, &(start, end)) in bodies.iter().enumerate().take(8) {
        let sp = dwarf.unit.add(root, gimli::DW_TAG_subprogram);
        let e = dwarf.unit.get_mut(sp);
        e.set(
            gimli::DW_AT_name,
            AttributeValue::String(name(rng, &format!("fn{i}"))),
        );
        e.set(
            gimli::DW_AT_low_pc,
            AttributeValue::Address(Address::Constant((start - code_start) as u64)),
        );
        e.set(
            gimli::DW_AT_high_pc,
            AttributeValue::Udata((end - start) as u64),
        );
        if i == 0 && rng.chance(50) {
            let depth = *rng.pick(&[10usize, 1000, 20_000]);
            let mut parent = sp;
            for _ in 0..depth {
                let child = dwarf.unit.add(parent, gimli::DW_TAG_inlined_subroutine);
                let e = dwarf.unit.get_mut(child);
                e.set(
                    gimli::DW_AT_low_pc,
                    AttributeValue::Address(Address::Constant((start - code_start) as u64)),
                );
                e.set(
                    gimli::DW_AT_high_pc,
                    AttributeValue::Udata((end - start) as u64),
                );
                e.set(
                    gimli::DW_AT_call_line,
                    AttributeValue::Udata(line_number(rng)),
                );
                parent = child;
            }
        }
    }
    let mut sections = Sections::new(EndianVec::new(LittleEndian));
    if dwarf.write(&mut sections).is_err() {
        return vec![];
    }
    let mut out = Vec::new();
    let _ = sections.for_each(|id, data| {
        if !data.slice().is_empty() {
            out.push((id.name().to_string(), data.slice().to_vec()));
        }
        Ok::<(), ()>(())
    });
    // Sometimes damaged: bit flips, cuts, junk.
    if rng.chance(40) && !out.is_empty() {
        let i = rng.below(out.len());
        let data = &mut out[i].1;
        for _ in 0..rng.range(1, 4) {
            if data.is_empty() {
                break;
            }
            let pos = rng.below(data.len());
            match rng.range(0, 3) {
                0 => data[pos] ^= 1 << rng.range(0, 7),
                1 => data.truncate(pos),
                2 => {
                    let n = rng.range(1, 8) as usize;
                    let junk = rng.bytes(n);
                    data.splice(pos..pos, junk);
                }
                _ => data[pos] = *rng.pick(&[0x00, 0xff, 0x7f, 0x80]),
            }
        }
    }
    out
}
