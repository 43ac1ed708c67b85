//! WASI preview 1 (`wasi_snapshot_preview1`) for modules, deny by default.
//!
//! Granted: stdout and stderr (captured, see [`crate::runtime::guest_output`]), an empty stdin, clocks,
//! random bytes, empty arguments and environment, `sched_yield`, and `proc_exit`.
//! Denied: every file system call (there are no preopened directories: `path_*` answer
//! `ENOTCAPABLE`, other descriptors `EBADF`), sockets and `poll_oneoff` (`ENOTSUP`), signals.
//!
//! Every preview 1 function is defined, with its exact signature, so any WASI module links; the
//! denied ones just return their errno. Imports from any other module, or with another
//! signature, are refused when the module is loaded. Host functions here never call Postgres: they
//! run while wasm frames are live. Why this and not wasmer-wasix: see `docs/security.md`.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmer::{
    FunctionEnv, FunctionEnvMut, FunctionType, Imports, Module, RuntimeError, Store, Type, Value,
};

use crate::runtime::guest::{
    self, arg_i32, bytes_cost, in_bounds, view_read, view_write, write_u32s, write_u64, GuestCtx,
    EFAULT, SUCCESS,
};

/// The WASI import module name.
pub const MODULE: &str = "wasi_snapshot_preview1";

// WASI errno values (SUCCESS and EFAULT are in guest.rs).
const EBADF: i32 = 8;
const EINVAL: i32 = 28;
const ENOTSUP: i32 = 58;
const ESPIPE: i32 = 70;
const ENOTCAPABLE: i32 = 76;

/// Largest `random_get` request served in one call (bigger requests are `EINVAL`).
const MAX_RANDOM_BYTES: u32 = 1024 * 1024;
/// Most iovecs one `fd_write` takes (POSIX's usual IOV_MAX); more is `EINVAL`.
const MAX_IOVS: u32 = 1024;

use Type::{I32, I64};

/// Every preview 1 function: name, parameters, results.
const PREVIEW1: guest::HostTable = &[
    ("args_get", &[I32, I32], &[I32]),
    ("args_sizes_get", &[I32, I32], &[I32]),
    ("environ_get", &[I32, I32], &[I32]),
    ("environ_sizes_get", &[I32, I32], &[I32]),
    ("clock_res_get", &[I32, I32], &[I32]),
    ("clock_time_get", &[I32, I64, I32], &[I32]),
    ("fd_advise", &[I32, I64, I64, I32], &[I32]),
    ("fd_allocate", &[I32, I64, I64], &[I32]),
    ("fd_close", &[I32], &[I32]),
    ("fd_datasync", &[I32], &[I32]),
    ("fd_fdstat_get", &[I32, I32], &[I32]),
    ("fd_fdstat_set_flags", &[I32, I32], &[I32]),
    ("fd_fdstat_set_rights", &[I32, I64, I64], &[I32]),
    ("fd_filestat_get", &[I32, I32], &[I32]),
    ("fd_filestat_set_size", &[I32, I64], &[I32]),
    ("fd_filestat_set_times", &[I32, I64, I64, I32], &[I32]),
    ("fd_pread", &[I32, I32, I32, I64, I32], &[I32]),
    ("fd_prestat_get", &[I32, I32], &[I32]),
    ("fd_prestat_dir_name", &[I32, I32, I32], &[I32]),
    ("fd_pwrite", &[I32, I32, I32, I64, I32], &[I32]),
    ("fd_read", &[I32, I32, I32, I32], &[I32]),
    ("fd_readdir", &[I32, I32, I32, I64, I32], &[I32]),
    ("fd_renumber", &[I32, I32], &[I32]),
    ("fd_seek", &[I32, I64, I32, I32], &[I32]),
    ("fd_sync", &[I32], &[I32]),
    ("fd_tell", &[I32, I32], &[I32]),
    ("fd_write", &[I32, I32, I32, I32], &[I32]),
    ("path_create_directory", &[I32, I32, I32], &[I32]),
    ("path_filestat_get", &[I32, I32, I32, I32, I32], &[I32]),
    (
        "path_filestat_set_times",
        &[I32, I32, I32, I32, I64, I64, I32],
        &[I32],
    ),
    ("path_link", &[I32, I32, I32, I32, I32, I32, I32], &[I32]),
    (
        "path_open",
        &[I32, I32, I32, I32, I32, I64, I64, I32, I32],
        &[I32],
    ),
    ("path_readlink", &[I32, I32, I32, I32, I32, I32], &[I32]),
    ("path_remove_directory", &[I32, I32, I32], &[I32]),
    ("path_rename", &[I32, I32, I32, I32, I32, I32], &[I32]),
    ("path_symlink", &[I32, I32, I32, I32, I32], &[I32]),
    ("path_unlink_file", &[I32, I32, I32], &[I32]),
    ("poll_oneoff", &[I32, I32, I32, I32], &[I32]),
    ("proc_exit", &[I32], &[]),
    ("proc_raise", &[I32], &[I32]),
    ("sched_yield", &[], &[I32]),
    ("random_get", &[I32, I32], &[I32]),
    ("sock_accept", &[I32, I32, I32], &[I32]),
    ("sock_recv", &[I32, I32, I32, I32, I32, I32], &[I32]),
    ("sock_send", &[I32, I32, I32, I32, I32], &[I32]),
    ("sock_shutdown", &[I32, I32], &[I32]),
];

/// Whether plwasm provides `module`.`name` with signature `ty`.
pub fn provides(module: &str, name: &str, ty: &FunctionType) -> bool {
    guest::provides(PREVIEW1, MODULE, module, name, ty)
}

/// A guest's call of `proc_exit`: ends the call (unwinding the guest) with this code.
#[derive(Debug, thiserror::Error)]
#[error("proc_exit({0})")]
pub struct ProcExit(pub i32);

/// Add the WASI functions `module` imports to `imports`.
pub fn add_imports(
    store: &mut Store,
    env: &FunctionEnv<GuestCtx>,
    module: &Module,
    imports: &mut Imports,
) {
    guest::add_imports(store, env, module, imports, MODULE, PREVIEW1, call);
}

/// Dispatch one WASI call. Returns the errno (or nothing, for `proc_exit`'s unwinding).
fn call(
    name: &str,
    mut env: FunctionEnvMut<GuestCtx>,
    args: &[Value],
) -> Result<Vec<Value>, RuntimeError> {
    if name == "proc_exit" {
        return Err(RuntimeError::user(Box::new(ProcExit(arg_i32(args, 0)))));
    }
    let (ctx, store) = env.data_and_store_mut();
    // Every call costs at least one unit; calls that move bytes charge for them before.
    ctx.charge(1)?;
    let errno = match name {
        "args_sizes_get" | "environ_sizes_get" => {
            write_u32s(ctx, &store, &[(arg_i32(args, 0), 0), (arg_i32(args, 1), 0)])
        }
        "args_get" | "environ_get" | "sched_yield" => SUCCESS,
        "clock_res_get" => match clock_resolution(arg_i32(args, 0)) {
            Some(res) => write_u64(ctx, &store, arg_i32(args, 1), res),
            None => EINVAL,
        },
        "clock_time_get" => match clock_now(arg_i32(args, 0)) {
            Some(now) => write_u64(ctx, &store, arg_i32(args, 2), now),
            None => EINVAL,
        },
        "random_get" => random_get(ctx, &store, arg_i32(args, 0), arg_i32(args, 1))?,
        "fd_write" => fd_write(ctx, &store, args)?,
        "fd_read" => match arg_i32(args, 0) {
            // stdin is empty: end of file.
            0 => write_u32s(ctx, &store, &[(arg_i32(args, 3), 0)]),
            _ => EBADF,
        },
        "fd_fdstat_get" => fd_fdstat_get(ctx, &store, arg_i32(args, 0), arg_i32(args, 1)),
        "fd_close" => stdio_or_badf(arg_i32(args, 0), SUCCESS),
        "fd_seek" | "fd_tell" => stdio_or_badf(arg_i32(args, 0), ESPIPE),
        name if name.starts_with("path_") => ENOTCAPABLE,
        name if name.starts_with("sock_") || name == "poll_oneoff" || name == "proc_raise" => {
            ENOTSUP
        }
        // Every other fd_* call, including fd_prestat_get: there are no preopened directories
        // and no descriptors beyond 0, 1 and 2.
        _ => EBADF,
    };
    Ok(vec![Value::I32(errno)])
}

fn stdio_or_badf(fd: i32, errno: i32) -> i32 {
    if (0..=2).contains(&fd) {
        errno
    } else {
        EBADF
    }
}

fn clock_resolution(id: i32) -> Option<u64> {
    // realtime, monotonic, process and thread CPU time: nanosecond resolution.
    (0..=3).contains(&id).then_some(1)
}

fn clock_now(id: i32) -> Option<u64> {
    static START: OnceLock<Instant> = OnceLock::new();
    match id {
        0 => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as u64),
        1 => Some(START.get_or_init(Instant::now).elapsed().as_nanos() as u64),
        2 | 3 => {
            let clock = if id == 2 {
                libc::CLOCK_PROCESS_CPUTIME_ID
            } else {
                libc::CLOCK_THREAD_CPUTIME_ID
            };
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: a valid clock id and a valid out pointer.
            (unsafe { libc::clock_gettime(clock, &mut ts) } == 0)
                .then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
        }
        _ => None,
    }
}

fn random_get(
    ctx: &GuestCtx,
    store: &impl wasmer::AsStoreRef,
    ptr: i32,
    len: i32,
) -> Result<i32, RuntimeError> {
    let len = len as u32;
    if len > MAX_RANDOM_BYTES {
        return Ok(EINVAL);
    }
    if !in_bounds(ctx, store, ptr as u32, len) {
        return Ok(EFAULT);
    }
    ctx.charge(bytes_cost(len.into()))?;
    let mut buf = vec![0u8; len as usize];
    if !guest::fill_random(&mut buf) {
        return Ok(EFAULT);
    }
    Ok(view_write(ctx, store, ptr, &buf))
}

/// `fd_write` to stdout or stderr. Copies only what the stream still keeps (at most
/// [`crate::runtime::guest_output::MAX_CAPTURED_BYTES`] per call); the rest is bounds-checked and counted,
/// never read or allocated, so a call's work is O(iovecs + bytes kept).
fn fd_write(
    ctx: &mut GuestCtx,
    store: &impl wasmer::AsStoreRef,
    args: &[Value],
) -> Result<i32, RuntimeError> {
    let (fd, iovs, iovs_len, nwritten_ptr) = (
        arg_i32(args, 0),
        arg_i32(args, 1) as u32,
        arg_i32(args, 2) as u32,
        arg_i32(args, 3),
    );
    if fd != 1 && fd != 2 {
        return Ok(EBADF);
    }
    if iovs_len > MAX_IOVS {
        return Ok(EINVAL);
    }
    let mut written: u32 = 0;
    for i in 0..iovs_len {
        ctx.charge(1)?;
        let mut iov = [0u8; 8];
        if !view_read(ctx, store, iovs.wrapping_add(i * 8), &mut iov) {
            return Ok(EFAULT);
        }
        let [b0, b1, b2, b3, l0, l1, l2, l3] = iov;
        let base = u32::from_le_bytes([b0, b1, b2, b3]);
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        if !in_bounds(ctx, store, base, len) {
            return Ok(EFAULT);
        }
        let room = if fd == 1 {
            ctx.stdout.room()
        } else {
            ctx.stderr.room()
        };
        let kept = (len as usize).min(room);
        let mut data = Vec::new();
        if kept > 0 {
            ctx.charge(bytes_cost(kept as u64))?;
            data.resize(kept, 0);
            if !view_read(ctx, store, base, &mut data) {
                return Ok(EFAULT);
            }
        }
        let stream = if fd == 1 {
            &mut ctx.stdout
        } else {
            &mut ctx.stderr
        };
        stream.write(&data);
        stream.drop_bytes(len as usize - kept);
        written = written.saturating_add(len);
    }
    Ok(write_u32s(ctx, store, &[(nwritten_ptr, written)]))
}

fn fd_fdstat_get(ctx: &GuestCtx, store: &impl wasmer::AsStoreRef, fd: i32, ptr: i32) -> i32 {
    const CHARACTER_DEVICE: u8 = 2;
    const RIGHT_FD_READ: u64 = 1 << 1;
    const RIGHT_FD_WRITE: u64 = 1 << 6;
    let rights = match fd {
        0 => RIGHT_FD_READ,
        1 | 2 => RIGHT_FD_WRITE,
        _ => return EBADF,
    };
    // struct fdstat { u8 filetype; u16 flags; u64 rights_base; u64 rights_inheriting } (24 bytes)
    let mut stat = [0u8; 24];
    stat[0] = CHARACTER_DEVICE;
    stat[8..16].copy_from_slice(&rights.to_le_bytes());
    view_write(ctx, store, ptr, &stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_every_preview1_function_once() {
        assert_eq!(PREVIEW1.len(), 46);
        let mut names: Vec<_> = PREVIEW1.iter().map(|(n, _, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PREVIEW1.len());
    }

    #[test]
    fn provides_checks_module_name_and_signature() {
        let fd_write = FunctionType::new(vec![I32, I32, I32, I32], vec![I32]);
        assert!(provides(MODULE, "fd_write", &fd_write));
        assert!(!provides("env", "fd_write", &fd_write));
        assert!(!provides(
            MODULE,
            "fd_write",
            &FunctionType::new(vec![I32], vec![I32])
        ));
        assert!(!provides(MODULE, "thread_spawn", &fd_write));
    }

    #[test]
    fn clocks() {
        assert!(clock_now(0).unwrap() > 1_700_000_000 * 1_000_000_000);
        assert!(clock_now(1).is_some() && clock_now(2).is_some() && clock_now(3).is_some());
        assert_eq!(clock_now(4), None);
        assert_eq!(clock_resolution(9), None);
    }
}
