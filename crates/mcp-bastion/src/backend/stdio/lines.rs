//! Newline-delimited framing with a hard bound on line length.
//!
//! `tokio`'s `read_line` keeps a line in memory however long it gets; a child
//! that prints gigabytes without a newline would take the proxy down with it.
//! [`LineReader`] keeps at most `max` bytes of a line and discards the rest
//! chunk by chunk until the newline.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Bytes read from the pipe at a time: std's default buffer size. The buffer
/// lives as long as the child (one per session in per-session mode) and is
/// zeroed when allocated, so it is resident from the start: 64 KiB cost the
/// benchmark's 32-session proxy 2.3 MB of RSS and bought nothing measurable,
/// since a read returns whatever the child has written, many small replies
/// at once, and a long line takes a few more reads of a pipe whose own buffer
/// is 64 KiB anyway.
const CHUNK: usize = 8 * 1024;

/// One line, or the fact that it was too long to keep.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line, without its `\n` (a trailing `\r` is kept).
    Text(Vec<u8>),
    /// A line longer than the limit; it was discarded. `bytes` is its length.
    TooLong {
        /// The length of the discarded line, without its newline.
        bytes: usize,
    },
}

/// Reads `\n`-terminated lines of at most `max` bytes.
pub(crate) struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader that keeps lines of up to `max` bytes.
    pub(crate) fn new(inner: R, max: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(CHUNK, inner),
            max,
        }
    }

    /// The next line; `None` at end of input. A last line without a newline
    /// is still returned.
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<Line>> {
        let mut line = Vec::new();
        // `Some(n)` once the line has passed the limit: n bytes seen so far.
        let mut discarded: Option<usize> = None;
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                return Ok(match discarded {
                    Some(bytes) => Some(Line::TooLong { bytes }),
                    None if line.is_empty() => None,
                    None => Some(Line::Text(line)),
                });
            }
            let newline = buf.iter().position(|&b| b == b'\n');
            let chunk = &buf[..newline.unwrap_or(buf.len())];
            match &mut discarded {
                Some(seen) => *seen += chunk.len(),
                None if line.len() + chunk.len() > self.max => {
                    discarded = Some(line.len() + chunk.len());
                    line = Vec::new();
                }
                None => line.extend_from_slice(chunk),
            }
            let used = chunk.len() + usize::from(newline.is_some());
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(Some(match discarded {
                    Some(bytes) => Line::TooLong { bytes },
                    None => Line::Text(line),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use tokio::io::ReadBuf;

    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().await.expect("read") {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn splits_on_newlines_and_keeps_a_final_partial_line() {
        assert_eq!(
            lines(b"a\r\n\nbc\nd", 10).await,
            vec![
                Line::Text(b"a\r".to_vec()),
                Line::Text(vec![]),
                Line::Text(b"bc".to_vec()),
                Line::Text(b"d".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn over_long_lines_are_reported_and_skipped() {
        let mut input = vec![b'x'; 11];
        input.extend_from_slice(b"\nok\n");
        input.extend(std::iter::repeat_n(b'y', 200_000));
        assert_eq!(
            lines(&input, 10).await,
            vec![
                Line::TooLong { bytes: 11 },
                Line::Text(b"ok".to_vec()),
                Line::TooLong { bytes: 200_000 },
            ]
        );
        assert_eq!(
            lines(&[b'z'; 10], 10).await,
            vec![Line::Text(vec![b'z'; 10])]
        );
    }

    /// An endless line of `x`s that counts what was read.
    struct Endless {
        served: usize,
        limit: usize,
    }

    impl AsyncRead for Endless {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.served >= self.limit {
                buf.put_slice(b"\n{}\n");
                self.limit = usize::MAX;
                return Poll::Ready(Ok(()));
            }
            let n = buf.remaining().min(self.limit - self.served);
            buf.put_slice(&vec![b'x'; n]);
            self.served += n;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_huge_line_is_discarded_in_chunks_not_buffered() {
        // The reader never holds more than its 64 KiB buffer of this line.
        let huge = 32 * 1024 * 1024;
        let mut reader = LineReader::new(
            Endless {
                served: 0,
                limit: huge,
            },
            1024,
        );
        assert_eq!(
            reader.next_line().await.expect("read"),
            Some(Line::TooLong { bytes: huge })
        );
        assert_eq!(
            reader.next_line().await.expect("read"),
            Some(Line::Text(b"{}".to_vec()))
        );
        assert!(reader.inner.buffer().len() <= CHUNK);
    }
}
