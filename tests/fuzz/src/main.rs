//! plwasm's fuzzer: makes cases deterministically from a seed (wasm-smith modules, mutated
//! binaries and WAT, random arguments; see gen.rs) and runs them against a real cluster,
//! checking that no statement crashed or lost its backend, hung past statement_timeout, ended
//! in an internal error (XX000) or let a Rust panic reach the client, and that each ended in
//! an outcome its statement allows. Driven by tests/fuzz.sh.
//!
//!   plwasm-fuzz run --conn CONNINFO --out DIR --seed S [--first K] [--cases N] [--seconds T]
//!   plwasm-fuzz script --seed S --case K         # the case's SQL, as a psql script
//!   plwasm-fuzz replay --conn CONNINFO --out DIR FILE.sql...   # saved scripts, same checks
//!   plwasm-fuzz with-dwarf --seed S IN.wasm OUT.wasm   # a module with generated DWARF added

mod dwarf;
mod gen;
mod rng;
mod wasm;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::{CancelToken, Client, NoTls, SimpleQueryMessage};

use gen::{Case, Stmt};

/// Every session runs these first (also written at the top of each case's script).
fn preamble() -> Vec<String> {
    vec![
        "SET statement_timeout = '2s'".into(),
        "SET search_path = fz, public".into(),
        "SET client_min_messages = warning".into(),
    ]
}

/// What the watchdog thread sees of the statement running.
#[derive(Default)]
struct Watch {
    started: Option<Instant>,
    what: String,
    token: Option<CancelToken>,
    pid: i32,
    cancelled: bool,
    terminated: bool,
}

enum Outcome {
    Ok {
        rows: usize,
    },
    Err {
        code: String,
        severity: String,
        message: String,
        detail: String,
        hint: String,
    },
    Lost(String),
}

struct Runner {
    conn: String,
    out: PathBuf,
    client: Option<Client>,
    pid: i32,
    checkpointer: Option<i32>,
    /// The first case the current backend ran (a failure may depend on those before it).
    session_first: u64,
    session_cases: u64,
    reconnect_every: u64,
    watch: Arc<Mutex<Watch>>,
    stats: BTreeMap<String, u64>,
    failures: Vec<String>,
    hang: Duration,
    slowest: (Duration, String),
}

fn count(stats: &mut BTreeMap<String, u64>, key: String) {
    *stats.entry(key).or_insert(0) += 1;
}

impl Runner {
    fn connect(&mut self, first_case: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match Client::connect(&self.conn, NoTls) {
                Ok(mut c) => {
                    for p in preamble() {
                        c.batch_execute(&p).map_err(|e| format!("{p}: {e}"))?;
                    }
                    let pid: i32 = c
                        .query_one("SELECT pg_backend_pid()", &[])
                        .map_err(|e| e.to_string())?
                        .get(0);
                    self.pid = pid;
                    let mut w = self.watch.lock().unwrap();
                    w.token = Some(c.cancel_token());
                    w.pid = pid;
                    drop(w);
                    self.client = Some(c);
                    self.session_first = first_case;
                    self.session_cases = 0;
                    return Ok(());
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(format!("cannot connect: {e}")),
            }
        }
    }

    fn execute(&mut self, sql: &str, what: &str) -> (Outcome, Duration) {
        let Some(client) = self.client.as_mut() else {
            return (Outcome::Lost("no connection".into()), Duration::ZERO);
        };
        {
            let mut w = self.watch.lock().unwrap();
            w.started = Some(Instant::now());
            w.what = what.to_string();
            w.cancelled = false;
            w.terminated = false;
        }
        let start = Instant::now();
        let result = client.simple_query(sql);
        let elapsed = start.elapsed();
        self.watch.lock().unwrap().started = None;
        let outcome = match result {
            Ok(msgs) => Outcome::Ok {
                rows: msgs
                    .iter()
                    .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                    .count(),
            },
            Err(e) => match e.as_db_error() {
                Some(db) => Outcome::Err {
                    code: db.code().code().to_string(),
                    severity: db.severity().to_string(),
                    message: db.message().to_string(),
                    detail: db.detail().unwrap_or("").to_string(),
                    hint: db.hint().unwrap_or("").to_string(),
                },
                None => Outcome::Lost(e.to_string()),
            },
        };
        if elapsed > self.slowest.0 {
            self.slowest = (elapsed, what.to_string());
        }
        (outcome, elapsed)
    }

    fn checkpointer_pid(&mut self) -> Option<i32> {
        let client = self.client.as_mut()?;
        let row = client
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'",
                &[],
            )
            .ok()??;
        Some(row.get(0))
    }

    /// Runs one case; returns the problems found (empty: it passed).
    fn run_case(&mut self, number: u64, case_label: &str, stmts: &[Stmt]) -> Vec<String> {
        let mut problems = Vec::new();
        if self.client.is_none()
            || self.session_cases >= self.reconnect_every
            || self.client.as_ref().is_some_and(|c| c.is_closed())
        {
            self.client = None;
            if let Err(e) = self.connect(number) {
                problems.push(format!("before the case: {e}"));
                return problems;
            }
        }
        self.session_cases += 1;
        count(&mut self.stats, "cases".into());
        let mut ok_so_far: Vec<bool> = Vec::new();
        for (i, st) in stmts.iter().enumerate() {
            let what = format!("case {number} statement {i} ({})", st.kind);
            let (outcome, elapsed) = self.execute(&st.sql, &what);
            count(&mut self.stats, "statements".into());
            count(&mut self.stats, format!("{}.total", st.kind));
            if elapsed > self.hang {
                count(&mut self.stats, "hangs".into());
                problems.push(format!(
                    "statement {i} ({}) took {:.1}s (statement_timeout is 2s; the limit here is {}s)",
                    st.kind,
                    elapsed.as_secs_f64(),
                    self.hang.as_secs()
                ));
            }
            let sql_lower = st.sql.to_lowercase();
            let result = match &outcome {
                Outcome::Ok { rows } => {
                    count(&mut self.stats, format!("{}.ok", st.kind));
                    if *rows > 0 {
                        count(&mut self.stats, format!("{}.rows", st.kind));
                    }
                    "ok".to_string()
                }
                Outcome::Err {
                    code,
                    severity,
                    message,
                    detail,
                    hint,
                } => {
                    count(&mut self.stats, format!("{}.{code}", st.kind));
                    count(&mut self.stats, format!("sqlstate.{code}"));
                    // Text the guest chose (plwasm.error, error_code, panic) may say anything.
                    let guest = code == "P0001"
                        || detail.starts_with("raised by")
                        || message.starts_with("wasm panic in");
                    if severity != "ERROR" {
                        count(&mut self.stats, "lost".into());
                        problems.push(format!(
                            "statement {i} ({}): {severity} {code}: {message}",
                            st.kind
                        ));
                    }
                    // A module cannot choose XX000 (plwasm.error_code refuses class XX), so no
                    // internal error is ever expected, whoever raised it.
                    if code == "XX000" {
                        count(&mut self.stats, "internal".into());
                        problems.push(format!("statement {i} ({}): internal error XX000: {message} (detail: {detail})", st.kind));
                    }
                    let all = format!("{message}\n{detail}\n{hint}").to_lowercase();
                    // A Rust panic's message and std's backtrace (not the wasm backtrace,
                    // whose file names come from the module's DWARF).
                    for word in [
                        "panicked",
                        "rust_backtrace",
                        "internal error",
                        "stack backtrace:",
                    ] {
                        if all.contains(word) && !sql_lower.contains(word) && !guest {
                            count(&mut self.stats, "panic_text".into());
                            problems.push(format!(
                                "statement {i} ({}): {code} message shows {word:?}: {message} (detail: {detail}; hint: {hint})",
                                st.kind
                            ));
                        }
                    }
                    code.clone()
                }
                Outcome::Lost(e) => {
                    count(&mut self.stats, "lost".into());
                    problems.push(format!(
                        "statement {i} ({}): the connection was lost: {e}",
                        st.kind
                    ));
                    ok_so_far.push(false);
                    self.client = None;
                    break;
                }
            };
            let required_ok = st
                .requires
                .map(|r| ok_so_far.get(r).copied().unwrap_or(false))
                .unwrap_or(true);
            if required_ok && st.expect != "any" && !st.expect.split('|').any(|e| e == result) {
                count(&mut self.stats, "mismatches".into());
                let detail = match &outcome {
                    Outcome::Err {
                        message, detail, ..
                    } => format!(": {message} {detail}"),
                    _ => String::new(),
                };
                problems.push(format!(
                    "statement {i} ({}) ended in {result}, expected {}{}",
                    st.kind,
                    st.expect,
                    detail.chars().take(600).collect::<String>()
                ));
            }
            ok_so_far.push(result == "ok");
        }
        // The backend is still there, and the postmaster did not restart.
        let now = if self.client.is_some() {
            self.checkpointer_pid()
        } else {
            None
        };
        match (now, self.checkpointer) {
            (None, _) if self.client.is_some() => {
                problems.push("after the case, the session no longer answers".into());
                self.client = None;
            }
            (Some(now), Some(before)) if now != before => {
                count(&mut self.stats, "restarts".into());
                problems.push(format!(
                    "the postmaster restarted (checkpointer {before} -> {now}) during cases {}..{number} or the background work they started",
                    self.session_first
                ));
                self.checkpointer = Some(now);
            }
            (Some(now), None) => self.checkpointer = Some(now),
            _ => {}
        }
        if self.client.is_none() {
            // Wait for the server (it may be restarting) and check whether it restarted.
            if self.connect(number + 1).is_ok() {
                if let (Some(now), Some(before)) = (self.checkpointer_pid(), self.checkpointer) {
                    if now != before {
                        count(&mut self.stats, "restarts".into());
                        problems.push(format!(
                            "the postmaster restarted (checkpointer {before} -> {now})"
                        ));
                        self.checkpointer = Some(now);
                    }
                }
            }
        }
        if !problems.is_empty() {
            count(&mut self.stats, "failed_cases".into());
            let _ = case_label;
        }
        problems
    }

    fn save_failure(&mut self, case: &Case, problems: &[String], seed_hint: &str) {
        let dir = self
            .out
            .join("failures")
            .join(format!("seed-{}-case-{}", case.seed, case.number));
        let _ = fs::create_dir_all(&dir);
        let _ = fs::write(dir.join("case.sql"), gen::script(case, &preamble()));
        for (name, bytes) in &case.files {
            let _ = fs::write(dir.join(name), bytes);
        }
        let mut text = format!(
            "case {} of seed {}: {}\nthis backend had run cases {}..{} (one backend runs up to {} cases)\n",
            case.number, case.seed, case.label, self.session_first, case.number, self.reconnect_every
        );
        for p in problems {
            text.push_str(&format!("- {p}\n"));
        }
        text.push_str(&format!(
            "reproduce: {seed_hint}\n   or by hand, in a database with CREATE EXTENSION plwasm; CREATE SCHEMA fz: psql -X -f {}\n   a regression case: copy case.sql (minimized) into tests/fuzz/corpus/\n",
            dir.join("case.sql").display()
        ));
        let _ = fs::write(dir.join("failure.txt"), &text);
        println!("FAILURE {}", text.trim_end().replace('\n', "\nFAILURE "));
        self.failures.push(format!(
            "seed {} case {}: {}",
            case.seed,
            case.number,
            problems.join("; ")
        ));
    }

    fn write_stats(&self, seconds: f64) {
        let mut text = String::new();
        for (k, v) in &self.stats {
            text.push_str(&format!("{k} {v}\n"));
        }
        text.push_str(&format!("seconds {seconds:.0}\n"));
        text.push_str(&format!("slowest_ms {}\n", self.slowest.0.as_millis()));
        text.push_str(&format!(
            "slowest_what {}\n",
            self.slowest.1.replace(' ', "_")
        ));
        text.push_str(&format!("failures {}\n", self.failures.len()));
        let _ = fs::write(self.out.join("stats.txt"), text);
        let _ = fs::write(
            self.out.join("failures.txt"),
            self.failures.join("\n") + if self.failures.is_empty() { "" } else { "\n" },
        );
    }
}

/// Cancels a statement running past the hang limit, terminates its backend 10 s later, and
/// gives up on the run (exit 3) when even that does not end it.
fn watchdog(watch: Arc<Mutex<Watch>>, hang: Duration, conn: String, out: PathBuf) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        let mut w = watch.lock().unwrap();
        let Some(start) = w.started else { continue };
        let e = start.elapsed();
        if e > hang && !w.cancelled {
            w.cancelled = true;
            eprintln!(
                "# watchdog: {} runs for {:.1}s: cancelling it",
                w.what,
                e.as_secs_f64()
            );
            if let Some(t) = w.token.clone() {
                drop(w);
                let _ = t.cancel_query(NoTls);
            }
        } else if e > hang + Duration::from_secs(10) && !w.terminated {
            w.terminated = true;
            let pid = w.pid;
            eprintln!(
                "# watchdog: {} still runs after a cancel: terminating backend {pid}",
                w.what
            );
            drop(w);
            if let Ok(mut c) = Client::connect(&conn, NoTls) {
                let _ = c.execute("SELECT pg_terminate_backend($1)", &[&pid]);
            }
        } else if e > hang + Duration::from_secs(40) {
            let msg = format!(
                "{} could be neither cancelled nor terminated ({:.0}s)",
                w.what,
                e.as_secs_f64()
            );
            eprintln!("# watchdog: {msg}: giving up");
            let _ = fs::write(out.join("unkillable.txt"), msg + "\n");
            std::process::exit(3);
        }
    });
}

struct Args {
    cmd: String,
    conn: String,
    out: PathBuf,
    seed: u64,
    first: u64,
    cases: Option<u64>,
    seconds: Option<u64>,
    hang: u64,
    max_failures: usize,
    reconnect_every: u64,
    files: Vec<String>,
    case: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        cmd: String::new(),
        conn: String::new(),
        out: PathBuf::from("."),
        seed: 1,
        first: 0,
        cases: None,
        seconds: None,
        hang: 10,
        max_failures: 10,
        reconnect_every: 25,
        files: vec![],
        case: 0,
    };
    let mut it = std::env::args().skip(1);
    a.cmd = it.next().unwrap_or_default();
    while let Some(arg) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--conn" => a.conn = val(),
            "--out" => a.out = PathBuf::from(val()),
            "--seed" => a.seed = val().parse().unwrap_or_else(|_| usage("--seed: a number")),
            "--first" => a.first = val().parse().unwrap_or_else(|_| usage("--first: a number")),
            "--case" => a.case = val().parse().unwrap_or_else(|_| usage("--case: a number")),
            "--cases" => {
                a.cases = Some(val().parse().unwrap_or_else(|_| usage("--cases: a number")))
            }
            "--seconds" => {
                a.seconds = Some(
                    val()
                        .parse()
                        .unwrap_or_else(|_| usage("--seconds: a number")),
                )
            }
            "--hang-seconds" => {
                a.hang = val()
                    .parse()
                    .unwrap_or_else(|_| usage("--hang-seconds: a number"))
            }
            "--max-failures" => {
                a.max_failures = val()
                    .parse()
                    .unwrap_or_else(|_| usage("--max-failures: a number"))
            }
            "--reconnect-every" => {
                a.reconnect_every = val()
                    .parse()
                    .unwrap_or_else(|_| usage("--reconnect-every: a number"))
            }
            f if !f.starts_with("--") => a.files.push(f.to_string()),
            other => usage(&format!("unknown option {other}")),
        }
    }
    a
}

fn usage(msg: &str) -> ! {
    eprintln!("plwasm-fuzz: {msg}");
    eprintln!("usage: plwasm-fuzz run --conn CONNINFO --out DIR --seed S [--first K] [--cases N] [--seconds T]");
    eprintln!("       plwasm-fuzz script --seed S --case K");
    eprintln!("       plwasm-fuzz replay --conn CONNINFO --out DIR FILE.sql...");
    std::process::exit(2)
}

fn main() {
    // gimli's writer recurses over nested DWARF entries (some cases nest 20000 deep).
    let main = std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(real_main)
        .expect("thread");
    let code = main.join().unwrap_or(101);
    std::process::exit(code);
}

fn real_main() -> i32 {
    let args = parse_args();
    match args.cmd.as_str() {
        "script" => {
            let case = gen::make(args.seed, args.case);
            let _ = std::io::stdout().write_all(gen::script(&case, &preamble()).as_bytes());
            0
        }
        "with-dwarf" => {
            // Appends generated DWARF sections to a module (to check or reproduce by hand).
            let [input, output] = &args.files[..] else {
                usage("with-dwarf IN.wasm OUT.wasm")
            };
            let mut bytes = fs::read(input).unwrap_or_else(|e| usage(&format!("{input}: {e}")));
            let mut rng = rng::Rng::new(args.seed);
            for (name, data) in dwarf::sections(&mut rng, &bytes.clone()) {
                wasm::add_custom(&mut bytes, &name, &data);
            }
            fs::write(output, bytes).unwrap_or_else(|e| usage(&format!("{output}: {e}")));
            0
        }
        "run" | "replay" => run(args),
        _ => usage("no command"),
    }
}

fn run(args: Args) -> i32 {
    if args.conn.is_empty() {
        usage("--conn is needed");
    }
    let _ = fs::create_dir_all(&args.out);
    let hang = Duration::from_secs(args.hang);
    let watch = Arc::new(Mutex::new(Watch::default()));
    watchdog(watch.clone(), hang, args.conn.clone(), args.out.clone());
    let mut r = Runner {
        conn: args.conn.clone(),
        out: args.out.clone(),
        client: None,
        pid: 0,
        checkpointer: None,
        session_first: args.first,
        session_cases: 0,
        reconnect_every: args.reconnect_every.max(1),
        watch,
        stats: BTreeMap::new(),
        failures: vec![],
        hang,
        slowest: (Duration::ZERO, String::new()),
    };
    if let Err(e) = r.connect(args.first) {
        eprintln!("plwasm-fuzz: {e}");
        std::process::exit(2);
    }
    r.checkpointer = r.checkpointer_pid();
    let start = Instant::now();
    let mut last_report = Instant::now();
    if args.cmd == "replay" {
        for (n, file) in args.files.iter().enumerate() {
            let text = fs::read_to_string(file).unwrap_or_else(|e| usage(&format!("{file}: {e}")));
            let stmts = gen::parse_script(&text);
            let problems = r.run_case(n as u64, file, &stmts);
            let status = if problems.is_empty() { "ok" } else { "FAILED" };
            println!("replay {file}: {} statements, {status}", stmts.len());
            for p in &problems {
                println!("FAILURE {file}: {p}");
                r.failures.push(format!("{file}: {p}"));
            }
            // A saved case starts in a backend of its own, as when it was saved.
            r.client = None;
        }
        r.write_stats(start.elapsed().as_secs_f64());
        return if r.failures.is_empty() { 0 } else { 1 };
    }
    let mut number = args.first;
    loop {
        if args.cases.is_some_and(|n| number >= args.first + n) {
            break;
        }
        if args
            .seconds
            .is_some_and(|s| start.elapsed() >= Duration::from_secs(s))
        {
            break;
        }
        if r.failures.len() >= args.max_failures {
            println!("# stopping after {} failures", r.failures.len());
            break;
        }
        let case = gen::make(args.seed, number);
        let problems = r.run_case(number, &case.label, &case.stmts);
        if !problems.is_empty() {
            let hint = format!(
                "PLWASM_FUZZ_SEED={} PLWASM_FUZZ_FIRST={} PLWASM_FUZZ_CASES={} bash tests/fuzz.sh   (case {} alone: PLWASM_FUZZ_FIRST={} PLWASM_FUZZ_CASES=1)",
                args.seed,
                r.session_first.min(number),
                number + 1 - r.session_first.min(number),
                number,
                number
            );
            r.save_failure(&case, &problems, &hint);
        }
        number += 1;
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            let g = |k: &str| r.stats.get(k).copied().unwrap_or(0);
            eprintln!(
                "# {:.0}s: {} cases, {} statements, {} calls returned a value, {} failures",
                start.elapsed().as_secs_f64(),
                g("cases"),
                g("statements"),
                g("call.rows") + g("call_rows.rows"),
                r.failures.len()
            );
            r.write_stats(start.elapsed().as_secs_f64());
        }
    }
    r.write_stats(start.elapsed().as_secs_f64());
    let _ = std::io::stdout().flush();
    if r.failures.is_empty() {
        0
    } else {
        1
    }
}
