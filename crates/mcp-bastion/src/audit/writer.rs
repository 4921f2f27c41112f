//! [`AuditWriter`]: a bounded queue of audit lines, drained by one thread
//! that writes them to a file, stdout or stderr. A request never waits on
//! it: when the queue is full the line is dropped and counted.

use std::{
    fmt,
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    path::PathBuf,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError},
    },
    time::{Duration, Instant},
};

use super::AuditRecord;

/// Counter of audit records dropped because the queue was full.
pub const AUDIT_RECORDS_DROPPED: &str = "mcp_audit_records_dropped_total";

/// The default queue capacity, in records.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;

/// How often, at most, a full queue is warned about.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Where audit lines go: `stdout`, `stderr`, or any other string as a file
/// path (appended to, created if missing).
///
/// ```
/// use mcp_bastion::audit::AuditSink;
///
/// assert_eq!("stdout".parse::<AuditSink>().unwrap(), AuditSink::Stdout);
/// assert_eq!(
///     "/var/log/mcp/audit.jsonl".parse::<AuditSink>().unwrap(),
///     AuditSink::File("/var/log/mcp/audit.jsonl".into())
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// A file, opened for appending (and reopened by [`AuditWriter::reopen`]).
    File(PathBuf),
}

/// An empty audit sink name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log must be a file path, `stdout` or `stderr`")]
pub struct EmptyAuditSink;

impl FromStr for AuditSink {
    type Err = EmptyAuditSink;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" => Err(EmptyAuditSink),
            "stdout" => Ok(Self::Stdout),
            "stderr" => Ok(Self::Stderr),
            path => Ok(Self::File(path.into())),
        }
    }
}

impl fmt::Display for AuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdout => f.write_str("stdout"),
            Self::Stderr => f.write_str("stderr"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What the queue carries.
enum Entry {
    /// One JSON line (without its newline).
    Line(String),
    /// One record, written as a JSON line by the thread.
    Record(Box<AuditRecord>),
    /// Wakes the thread to look at the reopen flag.
    Wake,
}

struct Shared {
    dropped: AtomicU64,
    reopen: AtomicBool,
    last_warn: std::sync::Mutex<Option<Instant>>,
}

/// The queue and its writing thread; cheap to clone (every clone feeds the
/// same queue). The thread ends when the last clone is dropped, after
/// writing what was queued.
///
/// ```
/// use mcp_bastion::audit::{AuditSink, AuditWriter};
///
/// let dir = std::env::temp_dir().join(format!("audit-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("audit.jsonl");
/// let writer = AuditWriter::open(AuditSink::File(path.clone()), 16).unwrap();
/// writer.write_line(r#"{"method":"ping"}"#.to_owned());
/// drop(writer); // flushes
/// # std::thread::sleep(std::time::Duration::from_millis(200));
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"method\":\"ping\"}\n");
/// ```
#[derive(Clone)]
pub struct AuditWriter {
    tx: SyncSender<Entry>,
    shared: Arc<Shared>,
}

impl fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditWriter")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Opens `sink` (a file is created if missing, and appended to) and
    /// starts the thread that drains a queue of `capacity` lines.
    pub fn open(sink: AuditSink, capacity: usize) -> io::Result<Self> {
        let out = Output::open(&sink)?;
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let shared = Arc::new(Shared {
            dropped: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
            last_warn: std::sync::Mutex::new(None),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("mcp-audit".into())
            .spawn(move || drain(rx, sink, out, &thread_shared))?;
        let writer = Self { tx, shared };
        writer.register_drop_counter();
        Ok(writer)
    }

    /// Registers `mcp_audit_records_dropped_total` with the installed
    /// metrics recorder, at its current value (0 before the first drop), so
    /// a scrape shows the counter before anything was dropped. [`open`]
    /// calls it; call it again when the recorder is installed after the
    /// writer was opened.
    ///
    /// [`open`]: Self::open
    pub fn register_drop_counter(&self) {
        metrics::counter!(AUDIT_RECORDS_DROPPED).increment(0);
    }

    /// Queues one line; never blocks. When the queue is full the line is
    /// dropped, counted ([`dropped`](Self::dropped) and the
    /// `mcp_audit_records_dropped_total` counter) and warned about, at most
    /// once every 10 seconds.
    pub fn write_line(&self, line: String) {
        match self.tx.try_send(Entry::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.count_drop(),
        }
    }

    /// Queues one record, written as its JSON line by the writer's thread
    /// (off the request's path); never blocks, and counts a drop as
    /// [`write_line`](Self::write_line) does.
    pub(crate) fn write_record(&self, record: AuditRecord) {
        match self.tx.try_send(Entry::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.count_drop(),
        }
    }

    /// Closes and reopens the file (after logrotate renamed it), before the
    /// next line is written. No line is lost: lines queued meanwhile go to
    /// the new file. Nothing to do for stdout and stderr.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        // A full queue means the thread is busy and sees the flag anyway.
        let _ = self.tx.try_send(Entry::Wake);
    }

    /// How many lines were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn count_drop(&self) {
        let total = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::counter!(AUDIT_RECORDS_DROPPED).increment(1);
        let mut last = self
            .shared
            .last_warn
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                dropped_total = total,
                "audit log queue full: records dropped (the sink is not keeping up)"
            );
        }
    }
}

/// The open sink.
enum Output {
    Stdout(io::Stdout),
    Stderr(io::Stderr),
    File(BufWriter<File>),
}

impl Output {
    fn open(sink: &AuditSink) -> io::Result<Self> {
        Ok(match sink {
            AuditSink::Stdout => Self::Stdout(io::stdout()),
            AuditSink::Stderr => Self::Stderr(io::stderr()),
            AuditSink::File(path) => Self::File(BufWriter::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Stdout(w) => w,
            Self::Stderr(w) => w,
            Self::File(w) => w,
        }
    }
}

/// The thread: write each line, flush whenever the queue is empty, reopen
/// when asked.
fn drain(rx: Receiver<Entry>, sink: AuditSink, mut out: Output, shared: &Shared) {
    // one buffer for every line the thread formats
    let mut buf = Vec::with_capacity(512);
    loop {
        let entry = match rx.try_recv() {
            Ok(entry) => entry,
            Err(TryRecvError::Empty) => {
                flush(&mut out);
                match rx.recv() {
                    Ok(entry) => entry,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        if shared.reopen.swap(false, Ordering::AcqRel) {
            flush(&mut out);
            match Output::open(&sink) {
                Ok(reopened) => out = reopened,
                Err(e) => {
                    tracing::warn!(error = %e, sink = %sink, "audit log: reopen failed; writing on to the old file")
                }
            }
        }
        buf.clear();
        match entry {
            Entry::Line(line) => buf.extend_from_slice(line.as_bytes()),
            Entry::Record(record) => record.write_json(&mut buf),
            Entry::Wake => continue,
        }
        buf.push(b'\n');
        if let Err(e) = out.writer().write_all(&buf) {
            tracing::warn!(error = %e, "audit log: write failed");
        }
    }
    flush(&mut out);
}

fn flush(out: &mut Output) {
    if let Err(e) = out.writer().flush() {
        tracing::warn!(error = %e, "audit log: flush failed");
    }
}
