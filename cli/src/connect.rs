//! Connecting like libpq does: a connection string (`--dsn`, key=value or a `postgresql://` URL)
//! first, then the `PG*` environment variables for whatever it leaves out, then libpq's defaults
//! (the Unix socket in `/var/run/postgresql`, the OS user, a database named like the user), and a
//! password from `~/.pgpass` (or `PGPASSFILE`) when none was given.
//!
//! TLS: this build connects without it; `sslmode=require` (or stricter) is refused by the client
//! library with an error rather than silently ignored.

use std::path::{Path, PathBuf};

use postgres::config::Host;
use postgres::{Client, Config, NoTls};

/// Why no connection could be made: bad settings (`usage`, exit code 2) or a failed attempt
/// (exit code 3).
#[derive(Debug)]
pub struct ConnectError {
    pub message: String,
    pub usage: bool,
}

fn usage(message: String) -> ConnectError {
    ConnectError {
        message,
        usage: true,
    }
}

/// The connection settings for `dsn` (or none), completed from the environment and defaults.
pub fn config(dsn: Option<&str>) -> Result<Config, ConnectError> {
    let mut config = match dsn {
        Some(dsn) => dsn.parse::<Config>().map_err(|e| {
            // The client library's message already says "invalid connection string"; its
            // cause names the problem.
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            usage(format!("invalid --dsn: {e}{cause}"))
        })?,
        None => Config::new(),
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(hosts) => {
                for host in hosts.split(',') {
                    config.host(host);
                }
            }
            None if Path::new(DEFAULT_SOCKET_DIR).is_dir() => {
                config.host_path(DEFAULT_SOCKET_DIR);
            }
            None => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env("PGPORT") {
            let port = port
                .parse::<u16>()
                .map_err(|_| usage(format!("invalid PGPORT \"{port}\"")))?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .ok_or_else(|| usage("no user: set PGUSER or pass user= in --dsn".into()))?;
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let dbname =
            env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or_default().into());
        config.dbname(&dbname);
    }
    // PGSSLMODE when the connection string does not say (this build has no TLS: "require" and
    // stricter modes then fail to connect instead of connecting in the clear).
    if !dsn.is_some_and(|dsn| dsn.contains("sslmode=")) {
        if let Some(mode) = env("PGSSLMODE") {
            config.ssl_mode(match mode.as_str() {
                "disable" => postgres::config::SslMode::Disable,
                "allow" | "prefer" => postgres::config::SslMode::Prefer,
                "require" | "verify-ca" | "verify-full" => postgres::config::SslMode::Require,
                other => return Err(usage(format!("invalid PGSSLMODE \"{other}\""))),
            });
        }
    }
    // Like libpq, no TLS over Unix sockets, whatever sslmode says.
    if config
        .get_hosts()
        .iter()
        .all(|host| matches!(host, Host::Unix(_)))
    {
        config.ssl_mode(postgres::config::SslMode::Disable);
    }
    if config.get_application_name().is_none() {
        config.application_name(&env("PGAPPNAME").unwrap_or_else(|| "plwasm".into()));
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD").or_else(|| password_from_file(&config)) {
            config.password(password);
        }
    }
    Ok(config)
}

/// Connect with `config`.
pub fn connect(config: &Config) -> Result<Client, ConnectError> {
    config.connect(NoTls).map_err(|e| ConnectError {
        message: format!("cannot connect to {}: {}", describe(config), error_text(&e)),
        usage: false,
    })
}

/// Where `config` points, for messages (never the password).
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "database \"{}\" on {host}:{port} as \"{}\"",
        config.get_dbname().unwrap_or("?"),
        config.get_user().unwrap_or("?")
    )
}

/// A client error's text, with the server's SQLSTATE when there is one.
pub fn error_text(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("\nDETAIL: {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("\nHINT: {hint}"));
            }
            text
        }
        None => {
            // The client library's message, and what caused it (e.g. the I/O error).
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

/// The password `~/.pgpass` (or `PGPASSFILE`) gives for `config`'s first host, port, database
/// and user, as libpq reads it: `host:port:database:user:password` lines, `*` matching anything,
/// `\:` and `\\` escaped, the first matching line wins, and the file is ignored unless only its
/// owner can read it. A Unix-socket host matches its directory, and `localhost` too when it is
/// the default socket directory.
fn password_from_file(config: &Config) -> Option<String> {
    let path = match std::env::var_os("PGPASSFILE") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".pgpass"),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            eprintln!(
                "warning: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                path.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let hosts: Vec<String> = match config.get_hosts().first()? {
        Host::Tcp(host) => vec![host.clone()],
        Host::Unix(dir) if dir == Path::new(DEFAULT_SOCKET_DIR) => {
            vec![dir.display().to_string(), "localhost".into()]
        }
        Host::Unix(dir) => vec![dir.display().to_string()],
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let (dbname, user) = (config.get_dbname()?, config.get_user()?);
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass_line(line);
            let [host, p, d, u, password, ..] = fields.as_slice() else {
                return None;
            };
            let matches = |field: &str, want: &str| field == "*" || field == want;
            (hosts.iter().any(|h| matches(host, h))
                && matches(p, &port)
                && matches(d, dbname)
                && matches(u, user))
            .then(|| password.clone())
        })
}

/// libpq's default Unix socket directory on Debian.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The fields of one `.pgpass` line, unescaped.
fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_unescape() {
        assert_eq!(
            split_pgpass_line(r"db\:host:5432:*:me:pa\\ss:word"),
            vec!["db:host", "5432", "*", "me", r"pa\ss", "word"]
        );
    }

    #[test]
    fn dsn_wins_over_the_environment() {
        let config = config(Some("host=/tmp port=6543 user=alice dbname=shop")).unwrap();
        assert_eq!(config.get_user(), Some("alice"));
        assert_eq!(config.get_dbname(), Some("shop"));
        assert_eq!(config.get_ports(), &[6543]);
        assert!(matches!(config.get_hosts(), [Host::Unix(p)] if p == Path::new("/tmp")));
    }

    #[test]
    fn bad_dsn_is_a_usage_error() {
        let error = config(Some("host=x port=notanumber")).unwrap_err();
        assert!(error.usage);
        assert!(error.message.contains("port"), "{}", error.message);
    }
}
