//! `plwasm`: from `cargo new` to a deployed UDF.
//!
//! - `plwasm new NAME`: a UDF crate that builds and deploys as it is.
//! - `plwasm build [DIR]`: the crate compiled to a `.wasm` module, with progress.
//! - `plwasm deploy DIR|FILE.wasm`: load the module and declare its functions, in one transaction
//!   (`--dry-run` to see what would change, `--replace` to update).
//! - `plwasm ls`: the modules of a database.
//!
//! Connections follow libpq: `--dsn` (a connection string or URL), `PG*` variables, `~/.pgpass`.
//! Exit codes: 0 done, 1 failed (the message says why), 2 bad usage (arguments, connection
//! settings), 3 cannot connect.

mod connect;
mod deploy;
mod module_file;
mod new_crate;
mod wasm_build;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "plwasm",
    version,
    about = "Write, build and deploy plwasm UDFs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a UDF crate in directory NAME.
    New {
        name: String,
        /// The plwasm-udf crate to depend on (default: the SDK of the checkout this CLI was built from).
        #[arg(long, conflicts_with = "sdk_git")]
        sdk_path: Option<PathBuf>,
        /// Depend on the SDK from this git repository instead.
        #[arg(long)]
        sdk_git: Option<String>,
    },
    /// Compile a UDF crate to a .wasm module.
    Build {
        /// The crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value = "wasm32-unknown-unknown")]
        target: String,
    },
    /// Load a module into a database and declare the functions it describes.
    Deploy {
        /// A crate directory (built first) or a .wasm file.
        path: PathBuf,
        /// The module's name in the database (default: the crate's or file's name).
        #[arg(long)]
        name: Option<String>,
        /// The schema for its functions (default: the connection's current schema).
        #[arg(long)]
        schema: Option<String>,
        /// Replace a deployed module of that name, and its functions' declarations.
        #[arg(long)]
        replace: bool,
        /// Do everything in a transaction that is rolled back: shows what would change.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        connection: Connection,
        #[arg(long, default_value = "wasm32-unknown-unknown")]
        target: String,
    },
    /// List the modules of a database.
    Ls {
        /// Also list each module's SQL functions.
        #[arg(long, short)]
        functions: bool,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(clap::Args)]
struct Connection {
    /// A libpq connection string ("host=... dbname=...") or postgresql:// URL; PG* variables and
    /// ~/.pgpass fill in what it leaves out.
    #[arg(long, env = "PLWASM_DSN", hide_env_values = true)]
    dsn: Option<String>,
}

/// Why a command failed, and its exit code.
enum Failure {
    Failed(String),
    Usage(String),
    Connect(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(message)) => {
            eprintln!("plwasm: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("plwasm: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Connect(message)) => {
            eprintln!("plwasm: {message}");
            ExitCode::from(3)
        }
    }
}

fn connect(connection: &Connection) -> Result<postgres::Client, Failure> {
    let failure = |e: connect::ConnectError| {
        if e.usage {
            Failure::Usage(e.message)
        } else {
            Failure::Connect(e.message)
        }
    };
    let config = connect::config(connection.dsn.as_deref()).map_err(failure)?;
    connect::connect(&config).map_err(failure)
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::New {
            name,
            sdk_path,
            sdk_git,
        } => {
            let sdk = match (sdk_path, sdk_git) {
                (_, Some(url)) => new_crate::Sdk::Git(url),
                (Some(path), None) => new_crate::Sdk::Path(
                    path.canonicalize()
                        .map_err(|e| Failure::Failed(format!("--sdk-path {}: {e}", path.display())))?,
                ),
                (None, None) => new_crate::Sdk::Path(new_crate::default_sdk_path().ok_or_else(
                    || {
                        Failure::Failed(
                            "the SDK this CLI was built with is not where it was: pass --sdk-path DIR (udf-sdk/plwasm-udf of a plwasm checkout) or --sdk-git URL"
                                .into(),
                        )
                    },
                )?),
            };
            let dir = Path::new(&name);
            let crate_name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            new_crate::create(dir, &crate_name, &sdk).map_err(Failure::Failed)?;
            println!(
                "created {name}: build with `plwasm build {name}`, deploy with `plwasm deploy {name} --dsn ...`"
            );
            Ok(())
        }
        Command::Build { dir, target } => {
            let module = wasm_build::build(&dir, &target).map_err(Failure::Failed)?;
            println!("{}", module.display());
            Ok(())
        }
        Command::Deploy {
            path,
            name,
            schema,
            replace,
            dry_run,
            connection,
            target,
        } => {
            let file = if path.is_dir() {
                wasm_build::build(&path, &target).map_err(Failure::Failed)?
            } else {
                path
            };
            let module = module_file::read(&file).map_err(Failure::Failed)?;
            if let Some(abi) = &module.foreign_abi {
                return Err(Failure::Failed(format!(
                    "{} was built for plwasm ABI \"{abi}\"; this plwasm deploys ABI v{} (rebuild it with this plwasm's SDK)",
                    file.display(),
                    module_file::ABI_VERSION
                )));
            }
            let name = name.unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let mut client = connect(&connection)?;
            let report = deploy::deploy(
                &mut client,
                &deploy::Deploy {
                    name: &name,
                    module: &module,
                    schema: schema.as_deref(),
                    replace,
                    dry_run,
                },
            )
            .map_err(|e| Failure::Failed(e.0))?;
            print!("{report}");
            Ok(())
        }
        Command::Ls {
            functions,
            connection,
        } => {
            let mut client = connect(&connection)?;
            let listing = deploy::list(&mut client, functions).map_err(|e| Failure::Failed(e.0))?;
            print!("{listing}");
            Ok(())
        }
    }
}
