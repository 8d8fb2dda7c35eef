//! Socket load benchmark: many concurrent clients on helperd's daemon socket and on git's
//! own `git credential-cache--daemon` socket, both holding the same credential, in one
//! process. Reports requests per second, p50, p99 and p99.9 latency per daemon and the
//! ratios helperd / credential-cache. `scripts/bench.sh` sets both daemons up and runs it.
//!
//! Only `std`, so it also builds on its own: `rustc -O --edition 2021 benches/socket_load.rs`.
//! As a cargo bench (`harness = false`): `cargo bench --bench socket_load -- --helperd ...`.
//!
//! ```text
//! socket_load --helperd SOCKET --cache SOCKET [--clients 64] [--seconds 5 | --requests N]
//!             [--rounds 6] [--protocol V] [--json OUT]
//! ```
//!
//! Each target gets `--clients` threads. Every thread loops: connect, write one request,
//! read the whole answer (until the daemon closes), check that the answer carries the
//! expected password (any other answer stops the run with an error), record the latency.
//! The targets take turns in rounds (helperd, cache, cache, helperd, helperd, ...), so
//! drifting machine noise falls on both alike. A run always ends by itself: by time or
//! count, per-request I/O timeouts, and a watchdog for a daemon that never accepts.
//!
//! Unix sockets only: nothing else is ever opened.

#[cfg(not(unix))]
fn main() {
    eprintln!("socket_load: Unix only (it talks to Unix domain sockets)");
}

#[cfg(unix)]
fn main() {
    load::main()
}

#[cfg(unix)]
mod load {
    use std::fmt::Write as _;
    use std::io::{ErrorKind, Read, Write};
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::process::exit;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    const USAGE: &str = "\
usage: socket_load [--helperd SOCKET] [--cache SOCKET] [options]

  --helperd SOCKET   helperd's daemon socket ($HELPERD_HOME/run/socket)
  --cache SOCKET     a `git credential-cache--daemon` socket
  --clients N        concurrent clients per target (64)
  --seconds S        measured time per target, split over the rounds (5)
  --requests N       instead of --seconds: requests per target, split over the rounds
  --rounds N         interleaved rounds per target (6)
  --warmup S         unmeasured warm-up per target before the rounds (0.5)
  --protocol V       helperd's wire PROTOCOL_VERSION (helper/src/wire.rs); asked of the
                     daemon when left out
  --scheme S         protocol= of the query (https)
  --host H           host= of the query (bench.example)
  --username U       expected username= in the answers (bench)
  --password P       expected password= in the answers (bench-secret)
  --cache-timeout T  timeout= line sent to credential-cache, as its client does (900)
  --io-timeout S     read/write timeout per request (10)
  --max-seconds S    stop with an error after this long (computed from the above)
  --json OUT         also write the results as JSON
";

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Kind {
        Helperd,
        Cache,
    }

    struct Config {
        helperd: Option<PathBuf>,
        cache: Option<PathBuf>,
        clients: usize,
        seconds: f64,
        requests: Option<u64>,
        rounds: usize,
        warmup: f64,
        protocol: Option<u32>,
        scheme: String,
        host: String,
        username: String,
        password: String,
        cache_timeout: u64,
        io_timeout: Duration,
        max_seconds: Option<f64>,
        json: Option<PathBuf>,
    }

    /// One daemon under test and everything needed to ask it and check its answer.
    struct Spec {
        kind: Kind,
        name: &'static str,
        socket: PathBuf,
        request: Vec<u8>,
        username: String,
        password: String,
        io_timeout: Duration,
    }

    #[derive(Default)]
    struct Totals {
        latencies_ns: Vec<u64>,
        wall: Duration,
        round_rps: Vec<f64>,
    }

    fn die(msg: impl std::fmt::Display) -> ! {
        eprintln!("socket_load: {msg}");
        exit(1)
    }

    fn parse_args() -> Config {
        let mut c = Config {
            helperd: None,
            cache: None,
            clients: 64,
            seconds: 5.0,
            requests: None,
            rounds: 6,
            warmup: 0.5,
            protocol: None,
            scheme: "https".into(),
            host: "bench.example".into(),
            username: "bench".into(),
            password: "bench-secret".into(),
            cache_timeout: 900,
            io_timeout: Duration::from_secs(10),
            max_seconds: None,
            json: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            // `cargo bench` passes --bench; a harness=false binary may ignore it.
            if flag == "--bench" {
                continue;
            }
            if flag == "-h" || flag == "--help" {
                print!("{USAGE}");
                exit(0);
            }
            let mut value = || -> String {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .unwrap_or_else(|| die(format!("{flag} needs a value\n{USAGE}")))
            };
            fn num<T: std::str::FromStr>(flag: &str, v: String) -> T {
                v.parse()
                    .unwrap_or_else(|_| die(format!("{flag}: not a valid number: {v:?}")))
            }
            match flag.as_str() {
                "--helperd" => c.helperd = Some(value().into()),
                "--cache" => c.cache = Some(value().into()),
                "--clients" => c.clients = num(&flag, value()),
                "--seconds" => c.seconds = num(&flag, value()),
                "--requests" => c.requests = Some(num(&flag, value())),
                "--rounds" => c.rounds = num(&flag, value()),
                "--warmup" => c.warmup = num(&flag, value()),
                "--protocol" => c.protocol = Some(num(&flag, value())),
                "--scheme" => c.scheme = value(),
                "--host" => c.host = value(),
                "--username" => c.username = value(),
                "--password" => c.password = value(),
                "--cache-timeout" => c.cache_timeout = num(&flag, value()),
                "--io-timeout" => c.io_timeout = Duration::from_secs_f64(num(&flag, value())),
                "--max-seconds" => c.max_seconds = Some(num(&flag, value())),
                "--json" => c.json = Some(value().into()),
                _ => die(format!("unknown argument {arg:?}\n{USAGE}")),
            }
        }
        if c.clients == 0 || c.rounds == 0 || c.seconds.is_nan() || c.seconds <= 0.0 {
            die("--clients, --rounds and --seconds must be positive");
        }
        if c.warmup.is_nan() || c.warmup < 0.0 {
            die("--warmup cannot be negative");
        }
        if c.requests == Some(0) {
            die("--requests must be positive");
        }
        for s in [&c.scheme, &c.host, &c.username, &c.password] {
            if s.contains(['\n', '\0']) {
                die("query and credential values cannot hold newlines or NUL");
            }
        }
        c
    }

    /// A JSON string literal.
    fn json_string(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for ch in s.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// helperd's request: one JSON line, the shape of `Envelope { v, Request::Git { .. } }`
    /// in helper/src/wire.rs; git's stdin is forwarded unparsed as `input`.
    fn helperd_request(protocol: u32, query: &str) -> Vec<u8> {
        format!(
            "{{\"v\":{protocol},\"op\":\"git\",\"action\":\"get\",\"input\":{}}}\n",
            json_string(query)
        )
        .into_bytes()
    }

    /// The bytes `git credential-cache get` sends, from git v2.47.3 builtin/credential-cache.c:
    /// do_cache() writes "action=%s\n" and "timeout=%d\n" and then relays its stdin (the
    /// credential lines) unchanged; send_request() writes it all, then shutdown(fd, SHUT_WR)
    /// marks the end of the request (no blank line), then reads until EOF (ECONNRESET counts
    /// as EOF: connection_closed()). The daemon (builtin/credential-cache--daemon.c:
    /// read_request() -> credential_read(), which stops at EOF or a blank line) answers in
    /// serve_one_client() with "capability[]=authtype\n", "username=..\n", "password=..\n"
    /// and closes the connection (fclose) in serve_cache_loop(): EOF ends the answer. It
    /// serves one connection at a time, with a listen backlog of 5 (unix-socket.c).
    fn cache_request(timeout: u64, query: &str) -> Vec<u8> {
        format!("action=get\ntimeout={timeout}\n{query}").into_bytes()
    }

    /// The value of the top-level string member `key` of a one-line JSON object, unescaped.
    /// Enough for serde_json's compact output: an unescaped `"key":"` cannot occur inside a
    /// string value.
    fn json_member(line: &str, key: &str) -> Option<String> {
        let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
        let mut out = String::new();
        let mut chars = line[start..].chars();
        while let Some(ch) = chars.next() {
            match ch {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let mut code = u32::from_str_radix(&hex, 16).ok()?;
                        if (0xd800..0xdc00).contains(&code) {
                            // A surrogate pair: \uD83D\uDE00.
                            if chars.next()? != '\\' || chars.next()? != 'u' {
                                return None;
                            }
                            let hex: String = chars.by_ref().take(4).collect();
                            let low = u32::from_str_radix(&hex, 16).ok()?;
                            code = 0x10000 + ((code - 0xd800) << 10) + (low.checked_sub(0xdc00)?);
                        }
                        out.push(char::from_u32(code)?);
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        None
    }

    /// Checks that an answer carries the expected credential; the error says what came back.
    fn verify(spec: &Spec, answer: &[u8]) -> Result<(), String> {
        let shown = || {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(400)]);
            format!("{text:?}")
        };
        let text = std::str::from_utf8(answer)
            .map_err(|_| format!("{}: answer is not UTF-8: {}", spec.name, shown()))?;
        let credential = match spec.kind {
            Kind::Cache => text.to_string(),
            Kind::Helperd => {
                if !text.ends_with('\n') || text.trim_end().contains('\n') {
                    return Err(format!(
                        "{}: answer is not exactly one JSON line: {}",
                        spec.name,
                        shown()
                    ));
                }
                if json_member(text, "result").as_deref() != Some("git") {
                    let message = json_member(text, "message").unwrap_or_default();
                    return Err(format!(
                        "{}: not a git answer ({message}): {}",
                        spec.name,
                        shown()
                    ));
                }
                json_member(text, "output").ok_or_else(|| {
                    format!("{}: git answer without output: {}", spec.name, shown())
                })?
            }
        };
        let has = |key: &str, want: &str| {
            credential
                .lines()
                .any(|l| l.split_once('=') == Some((key, want)))
        };
        if !has("password", &spec.password) || !has("username", &spec.username) {
            return Err(format!(
                "{}: answer lacks username={} / password=<expected>: {}",
                spec.name,
                spec.username,
                shown()
            ));
        }
        Ok(())
    }

    /// One request on a fresh connection, as the real client makes it.
    fn request_once(spec: &Spec, answer: &mut Vec<u8>) -> Result<(), String> {
        let io = |what: &str, e: std::io::Error| {
            format!("{}: {what} {}: {e}", spec.name, spec.socket.display())
        };
        let mut stream = UnixStream::connect(&spec.socket).map_err(|e| io("connect to", e))?;
        stream
            .set_read_timeout(Some(spec.io_timeout))
            .and_then(|_| stream.set_write_timeout(Some(spec.io_timeout)))
            .map_err(|e| io("set timeouts on", e))?;
        stream
            .write_all(&spec.request)
            .map_err(|e| io("write to", e))?;
        if spec.kind == Kind::Cache {
            // git's send_request(): the end of the request is the end of the stream.
            stream
                .shutdown(Shutdown::Write)
                .map_err(|e| io("shutdown(SHUT_WR) on", e))?;
        }
        // Each client reads as its real one does: git's credential-cache client until the
        // end of the stream (the daemon closes after its answer, see cache_request());
        // helperd's until the answer's newline (`read_until(b'\n')` in
        // helper/src/client.rs), then it hangs up without waiting for the daemon's close.
        answer.clear();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&chunk[..n]);
                    if spec.kind == Kind::Helperd && answer.ends_with(b"\n") {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!(
                        "{}: no complete answer from {} within {:?}",
                        spec.name,
                        spec.socket.display(),
                        spec.io_timeout
                    ))
                }
                Err(e) => return Err(io("read the answer from", e)),
            }
            if answer.len() > 1 << 20 {
                return Err(format!("{}: answer larger than 1 MiB", spec.name));
            }
        }
        Ok(())
    }

    enum Stop {
        After(Duration),
        Count(u64),
    }

    /// `clients` threads on one target until `stop`; the latencies and the wall time from
    /// the common start to the last answer.
    fn round(
        spec: &Arc<Spec>,
        clients: usize,
        stop: Stop,
        failed: &Arc<AtomicBool>,
    ) -> Result<(Vec<u64>, Duration), String> {
        let barrier = Arc::new(Barrier::new(clients + 1));
        let issued = Arc::new(AtomicU64::new(0));
        let (duration, count) = match stop {
            Stop::After(d) => (Some(d), None),
            Stop::Count(n) => (None, Some(n)),
        };
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let (spec, barrier, issued, failed) = (
                    spec.clone(),
                    barrier.clone(),
                    issued.clone(),
                    failed.clone(),
                );
                std::thread::spawn(move || -> Result<Vec<u64>, String> {
                    let mut latencies = Vec::with_capacity(4096);
                    let mut answer = Vec::with_capacity(512);
                    barrier.wait();
                    let deadline = duration.map(|d| Instant::now() + d);
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                        if count.is_some_and(|n| issued.fetch_add(1, Ordering::Relaxed) >= n) {
                            break;
                        }
                        let t0 = Instant::now();
                        let outcome =
                            request_once(&spec, &mut answer).and_then(|()| verify(&spec, &answer));
                        let elapsed = t0.elapsed();
                        if let Err(e) = outcome {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        latencies.push(elapsed.as_nanos() as u64);
                    }
                    Ok(latencies)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut all = Vec::new();
        let mut error = None;
        for t in threads {
            match t.join() {
                Ok(Ok(l)) => all.extend(l),
                Ok(Err(e)) => error = error.or(Some(e)),
                Err(_) => {
                    error = error.or(Some(format!("{}: a client thread panicked", spec.name)))
                }
            }
        }
        let wall = start.elapsed();
        match error {
            Some(e) => Err(e),
            None => Ok((all, wall)),
        }
    }

    /// Asks helperd which protocol it speaks: a request with version 0 is refused with
    /// "this helperd daemon speaks protocol N, ...".
    fn detect_protocol(socket: &Path, io_timeout: Duration) -> Result<u32, String> {
        let probe = Spec {
            kind: Kind::Helperd,
            name: "helperd",
            socket: socket.to_path_buf(),
            request: b"{\"v\":0,\"op\":\"status\"}\n".to_vec(),
            username: String::new(),
            password: String::new(),
            io_timeout,
        };
        let mut answer = Vec::new();
        request_once(&probe, &mut answer)?;
        let text = String::from_utf8_lossy(&answer);
        let message = json_member(&text, "message").unwrap_or_default();
        message
            .split_once("speaks protocol ")
            .and_then(|(_, rest)| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .ok_or_else(|| {
                format!(
                    "cannot tell helperd's protocol version from {text:?}; pass --protocol \
                     (PROTOCOL_VERSION in helper/src/wire.rs)"
                )
            })
    }

    fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        // Nearest rank.
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
    }

    struct Summary {
        name: &'static str,
        requests: usize,
        seconds: f64,
        rps: f64,
        round_rps: Vec<f64>,
        mean_ms: f64,
        p50_ms: f64,
        p90_ms: f64,
        p99_ms: f64,
        /// p99.9: where one daemon's heavier tail shows when both p99s are alike.
        p999_ms: f64,
        max_ms: f64,
    }

    fn summarize(name: &'static str, mut t: Totals) -> Summary {
        t.latencies_ns.sort_unstable();
        let n = t.latencies_ns.len();
        let seconds = t.wall.as_secs_f64();
        Summary {
            name,
            requests: n,
            seconds,
            rps: n as f64 / seconds,
            round_rps: t.round_rps,
            mean_ms: t.latencies_ns.iter().map(|&l| l as f64).sum::<f64>() / n as f64 / 1e6,
            p50_ms: percentile_ms(&t.latencies_ns, 50.0),
            p90_ms: percentile_ms(&t.latencies_ns, 90.0),
            p99_ms: percentile_ms(&t.latencies_ns, 99.0),
            p999_ms: percentile_ms(&t.latencies_ns, 99.9),
            max_ms: percentile_ms(&t.latencies_ns, 100.0),
        }
    }

    fn json_number(x: f64) -> String {
        if x.is_finite() {
            format!("{x:.6}")
        } else {
            "null".into()
        }
    }

    pub fn main() {
        let cfg = parse_args();
        if cfg.helperd.is_none() && cfg.cache.is_none() {
            // `cargo bench` / `cargo test --benches` with no sockets: nothing to measure.
            eprintln!(
                "socket_load: no --helperd or --cache socket given; nothing to do \
                 (scripts/bench.sh runs it with both)"
            );
            return;
        }

        // The watchdog: a daemon that accepts nothing (connect blocks once the backlog is
        // full) must not hang the benchmark.
        let expected = match cfg.requests {
            Some(_) => 300.0,
            None => 2.0 * (cfg.seconds + cfg.warmup) + 2.0 * cfg.rounds as f64,
        };
        let limit = cfg
            .max_seconds
            .unwrap_or(expected + 30.0 + 2.0 * cfg.io_timeout.as_secs_f64());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(limit));
            die(format!(
                "still running after {limit:.0} s: a daemon hangs; giving up"
            ));
        });

        let query = format!("protocol={}\nhost={}\n", cfg.scheme, cfg.host);
        let mut specs: Vec<Arc<Spec>> = Vec::new();
        let mut protocol = cfg.protocol;
        if let Some(socket) = &cfg.helperd {
            let v = match protocol {
                Some(v) => v,
                None => detect_protocol(socket, cfg.io_timeout).unwrap_or_else(|e| die(e)),
            };
            protocol = Some(v);
            specs.push(Arc::new(Spec {
                kind: Kind::Helperd,
                name: "helperd",
                socket: socket.clone(),
                request: helperd_request(v, &query),
                username: cfg.username.clone(),
                password: cfg.password.clone(),
                io_timeout: cfg.io_timeout,
            }));
        }
        if let Some(socket) = &cfg.cache {
            specs.push(Arc::new(Spec {
                kind: Kind::Cache,
                name: "credential-cache",
                socket: socket.clone(),
                request: cache_request(cfg.cache_timeout, &query),
                username: cfg.username.clone(),
                password: cfg.password.clone(),
                io_timeout: cfg.io_timeout,
            }));
        }

        // One request each, alone, first: a wrong set-up fails here, clearly.
        for spec in &specs {
            let mut answer = Vec::new();
            request_once(spec, &mut answer)
                .and_then(|()| verify(spec, &answer))
                .unwrap_or_else(|e| die(e));
        }

        let failed = Arc::new(AtomicBool::new(false));
        let per_round = match cfg.requests {
            Some(n) => format!("{} requests", n.div_ceil(cfg.rounds as u64)),
            None => format!("{:.2} s", cfg.seconds / cfg.rounds as f64),
        };
        eprintln!(
            "socket_load: {} clients per target, {} rounds of {per_round} per target, \
             interleaved; warm-up {:.1} s",
            cfg.clients, cfg.rounds, cfg.warmup
        );
        if cfg.warmup > 0.0 {
            for spec in &specs {
                let stop = Stop::After(Duration::from_secs_f64(cfg.warmup));
                round(spec, cfg.clients, stop, &failed).unwrap_or_else(|e| die(e));
            }
        }

        let mut totals: Vec<Totals> = specs.iter().map(|_| Totals::default()).collect();
        for r in 0..cfg.rounds {
            // ABBA order (helperd, cache, cache, helperd, ...): a linear drift in the
            // machine's load cancels out between the two.
            let order: Vec<usize> = if r % 2 == 0 {
                (0..specs.len()).collect()
            } else {
                (0..specs.len()).rev().collect()
            };
            for i in order {
                let stop = match cfg.requests {
                    Some(n) => Stop::Count(n.div_ceil(cfg.rounds as u64)),
                    None => Stop::After(Duration::from_secs_f64(cfg.seconds / cfg.rounds as f64)),
                };
                let (latencies, wall) =
                    round(&specs[i], cfg.clients, stop, &failed).unwrap_or_else(|e| die(e));
                let t = &mut totals[i];
                t.round_rps
                    .push(latencies.len() as f64 / wall.as_secs_f64());
                t.latencies_ns.extend(latencies);
                t.wall += wall;
            }
        }

        let summaries: Vec<Summary> = specs
            .iter()
            .zip(totals)
            .map(|(s, t)| summarize(s.name, t))
            .collect();

        println!(
            "{:<17} {:>9} {:>10} {:>19} {:>8} {:>8} {:>9} {:>8}",
            "target", "requests", "req/s", "rounds req/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for s in &summaries {
            let lo = s.round_rps.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = s.round_rps.iter().cloned().fold(0.0, f64::max);
            println!(
                "{:<17} {:>9} {:>10.0} {:>19} {:>8.3} {:>8.3} {:>9.3} {:>8.3}",
                s.name,
                s.requests,
                s.rps,
                format!("{lo:.0}-{hi:.0}"),
                s.p50_ms,
                s.p99_ms,
                s.p999_ms,
                s.max_ms
            );
        }
        let ratios = (summaries.len() == 2).then(|| {
            let (h, c) = (&summaries[0], &summaries[1]);
            (h.rps / c.rps, h.p50_ms / c.p50_ms, h.p99_ms / c.p99_ms)
        });
        if let Some((rps, p50, p99)) = ratios {
            println!(
                "helperd / credential-cache: req/s {rps:.2} (higher is better), \
                 p50 {p50:.2}, p99 {p99:.2} (lower is better)"
            );
        }

        if let Some(path) = &cfg.json {
            let mut out = String::new();
            let _ = write!(
                out,
                "{{\n  \"clients\": {},\n  \"rounds\": {},\n  \"mode\": {},\n  \
                 \"protocol\": {},\n  \"targets\": {{",
                cfg.clients,
                cfg.rounds,
                match cfg.requests {
                    Some(n) => format!("{{\"requests\": {n}}}"),
                    None => format!("{{\"seconds\": {}}}", json_number(cfg.seconds)),
                },
                protocol.map_or("null".into(), |v| v.to_string()),
            );
            for (i, s) in summaries.iter().enumerate() {
                let rounds: Vec<String> = s.round_rps.iter().map(|&x| json_number(x)).collect();
                let _ = write!(
                    out,
                    "{}\n    {}: {{\"requests\": {}, \"seconds\": {}, \"rps\": {}, \
                     \"round_rps\": [{}], \"mean_ms\": {}, \"p50_ms\": {}, \"p90_ms\": {}, \
                     \"p99_ms\": {}, \"p999_ms\": {}, \"max_ms\": {}}}",
                    if i == 0 { "" } else { "," },
                    json_string(s.name),
                    s.requests,
                    json_number(s.seconds),
                    json_number(s.rps),
                    rounds.join(", "),
                    json_number(s.mean_ms),
                    json_number(s.p50_ms),
                    json_number(s.p90_ms),
                    json_number(s.p99_ms),
                    json_number(s.p999_ms),
                    json_number(s.max_ms),
                );
            }
            out.push_str("\n  }");
            if let Some((rps, p50, p99)) = ratios {
                let _ = write!(
                    out,
                    ",\n  \"ratios_helperd_to_cache\": {{\"rps\": {}, \"p50\": {}, \"p99\": {}}}",
                    json_number(rps),
                    json_number(p50),
                    json_number(p99)
                );
            }
            out.push_str("\n}\n");
            std::fs::write(path, out)
                .unwrap_or_else(|e| die(format!("cannot write {}: {e}", path.display())));
        }
    }

    #[cfg(test)]
    mod tests {
        // With `harness = false` the tests below are not collected: `cargo test` runs
        // them only through `rustc --test benches/socket_load.rs`.
        #[allow(unused_imports)]
        use super::*;

        #[test]
        fn json_member_unescapes() {
            let line = r#"{"v":2,"result":"git","output":"username=bench\npassword=a\"b\\c\u00e9\ud83d\ude00\n"}"#;
            assert_eq!(json_member(line, "result").as_deref(), Some("git"));
            assert_eq!(
                json_member(line, "output").as_deref(),
                Some("username=bench\npassword=a\"b\\c\u{e9}\u{1f600}\n")
            );
            assert_eq!(json_member(line, "missing"), None);
        }

        #[test]
        fn helperd_request_matches_the_wire_format() {
            assert_eq!(
                helperd_request(2, "protocol=https\nhost=bench.example\n"),
                b"{\"v\":2,\"op\":\"git\",\"action\":\"get\",\"input\":\"protocol=https\\nhost=bench.example\\n\"}\n"
            );
        }

        #[test]
        fn percentiles_are_nearest_rank() {
            let v: Vec<u64> = (1..=100).map(|x| x * 1_000_000).collect();
            assert_eq!(percentile_ms(&v, 50.0), 50.0);
            assert_eq!(percentile_ms(&v, 99.0), 99.0);
            assert_eq!(percentile_ms(&v, 100.0), 100.0);
        }
    }
}
