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

    /// The captured lines (a final line without newline included), and how many bytes were
    /// dropped; empties the buffer.
    pub fn take_lines(&mut self) -> (Vec<String>, usize) {
        let bytes = std::mem::take(&mut self.bytes);
        let dropped = std::mem::take(&mut self.dropped);
        let mut lines: Vec<String> = bytes
            .split(|b| *b == b'\n')
            .map(|line| {
                let line = &line[..line.len().min(MAX_LINE_BYTES)];
                String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned()
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
    fn bounds_what_it_keeps() {
        let mut c = Captured::default();
        c.write(&vec![b'x'; MAX_CAPTURED_BYTES + 10]);
        c.write(b"more");
        let (lines, dropped) = c.take_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(dropped, 14);
    }
}
