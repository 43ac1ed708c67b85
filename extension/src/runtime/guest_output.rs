//! What a module writes to stdout and stderr (through WASI): captured in memory while the call
//! runs, bounded, and reported line by line once the call has returned — stdout as NOTICE, stderr
//! as LOG (the server log). Nothing is reported from inside the call: wasm frames are live then.

/// Bytes kept per stream and call; the rest is counted and dropped.
pub const MAX_CAPTURED_BYTES: usize = 64 * 1024;
/// Longest line reported; longer lines are cut.
pub const MAX_LINE_BYTES: usize = 4096;

/// One captured stream.
#[derive(Debug, Default)]
pub struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Captured {
    /// Take `data` (always "succeeds", as a terminal would); keeps at most [`MAX_CAPTURED_BYTES`].
    pub fn write(&mut self, data: &[u8]) {
        let room = MAX_CAPTURED_BYTES.saturating_sub(self.bytes.len());
        let kept = data.len().min(room);
        self.bytes.extend_from_slice(&data[..kept]);
        self.dropped += data.len() - kept;
    }

    /// Bytes this stream can still keep in this call.
    pub fn room(&self) -> usize {
        MAX_CAPTURED_BYTES.saturating_sub(self.bytes.len())
    }

    /// Count `n` bytes written but not kept.
    pub fn drop_bytes(&mut self, n: usize) {
        self.dropped = self.dropped.saturating_add(n);
    }

    /// The captured lines (a final line without newline included), and how many bytes were
    /// dropped — past the per-call cap, or cut from lines longer than [`MAX_LINE_BYTES`];
    /// empties the buffer.
    pub fn take_lines(&mut self) -> (Vec<String>, usize) {
        let bytes = std::mem::take(&mut self.bytes);
        let mut dropped = std::mem::take(&mut self.dropped);
        let mut lines: Vec<String> = bytes
            .split(|b| *b == b'\n')
            .map(|line| {
                dropped += line.len().saturating_sub(MAX_LINE_BYTES);
                let line = &line[..line.len().min(MAX_LINE_BYTES)];
                printable(line.strip_suffix(b"\r").unwrap_or(line))
            })
            .collect();
        if lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        (lines, dropped)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.dropped == 0
    }
}

/// Guest bytes as text Postgres can report: lossy UTF-8, NUL bytes (which a C string cannot
/// carry) as U+FFFD.
pub fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_a_partial_last_line() {
        let mut c = Captured::default();
        c.write(b"one\ntw");
        c.write(b"o\r\nthree");
        assert_eq!(
            c.take_lines(),
            (vec!["one".into(), "two".into(), "three".into()], 0)
        );
        assert!(c.is_empty());
    }

    #[test]
    fn nul_bytes_become_replacement_characters() {
        let mut c = Captured::default();
        c.write(b"a\0b\n");
        assert_eq!(c.take_lines().0, vec!["a\u{FFFD}b".to_string()]);
    }

    #[test]
    fn bounds_what_it_keeps() {
        let mut c = Captured::default();
        c.write(&vec![b'x'; MAX_CAPTURED_BYTES + 10]);
        c.write(b"more");
        let (lines, dropped) = c.take_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        // 14 bytes past the cap, and what the line cut removed from the kept 64 kB.
        assert_eq!(dropped, 14 + MAX_CAPTURED_BYTES - MAX_LINE_BYTES);
        let kept: usize = lines.iter().map(String::len).sum();
        assert_eq!(kept + dropped, MAX_CAPTURED_BYTES + 10 + 4);
    }
}
