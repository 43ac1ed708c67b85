//! UDFs that fail on purpose. Line numbers are part of the expected output of sdk_errors.sql:
//! add new functions at the end of the file.
use plwasm_udf::udf;

#[udf]
fn panics(x: i32) -> i32 {
    if x > 0 {
        panic!("x was {x}");
    }
    x
}

#[udf]
fn fails(x: i32) -> Result<i32, String> {
    if x > 0 {
        return Err(format!("x must not be positive, got {x}"));
    }
    Ok(x)
}

#[inline(never)]
fn descend(n: i64, seen: &mut [u8; 64]) -> i64 {
    let mut frame = [0u8; 64];
    frame[(n % 64) as usize] = seen[0].wrapping_add(1);
    if n == 0 {
        return i64::from(frame[0]);
    }
    descend(n - 1, &mut frame) + i64::from(seen[1])
}

/// Recursion `n` deep, 64+ bytes of stack per level.
#[udf]
fn recurse(n: i64) -> i64 {
    descend(n, &mut [0u8; 64])
}

#[inline(never)]
fn read_at(address: usize) -> u8 {
    // SAFETY: deliberately not safe: the address is outside the module's memory, so the load
    // traps. That is the point of this fixture.
    unsafe { std::ptr::read_volatile(address as *const u8) }
}

/// Reads a byte far outside the module's memory.
#[udf]
fn bad_pointer(offset: i32) -> i32 {
    i32::from(read_at(0xFFFF_0000usize + offset as usize))
}

/// Executes `unreachable`.
#[udf]
fn unreachable_trap(x: i32) -> i32 {
    if x > 0 {
        core::arch::wasm32::unreachable();
    }
    x
}
