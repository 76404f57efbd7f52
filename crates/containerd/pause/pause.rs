//! Capstan's pause: the process that holds a pod sandbox's namespaces.
//!
//! It has nothing to do but wait, so it is written without any libc (raw
//! system calls, its own entry point) and is about 1.5 KB. The signals it
//! cares about are blocked and taken synchronously with `rt_sigtimedwait`:
//! blocked signals reach it even as PID 1 of a pid namespace, where signals
//! with default handlers are dropped. SIGTERM and SIGINT end it with status 0;
//! SIGCHLD reaps every exited child (it is the namespace's init when the pod
//! shares its process namespace).
//!
//! Built by the `capstan-containerd` build script with `$RUSTC` and embedded
//! in the binary; see `crates/containerd/src/pause.rs`.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

const SIGINT: usize = 2;
const SIGTERM: usize = 15;
const SIGCHLD: usize = 17;
const SIG_BLOCK: usize = 0;
const WNOHANG: usize = 1;
/// The kernel's sigset_t is 64 bits on Linux.
const SIGSET_SIZE: usize = 8;

#[cfg(target_arch = "x86_64")]
mod sys {
    pub const RT_SIGPROCMASK: usize = 14;
    pub const RT_SIGTIMEDWAIT: usize = 128;
    pub const WAIT4: usize = 61;
    pub const EXIT_GROUP: usize = 231;
}

#[cfg(target_arch = "aarch64")]
mod sys {
    pub const RT_SIGPROCMASK: usize = 135;
    pub const RT_SIGTIMEDWAIT: usize = 137;
    pub const WAIT4: usize = 260;
    pub const EXIT_GROUP: usize = 94;
}

#[cfg(target_arch = "x86_64")]
unsafe fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c,
             in("r10") d, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    unsafe {
        asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b, in("x2") c, in("x3") d,
             options(nostack));
    }
    ret
}

// The kernel enters `_start` with a 16-byte aligned stack but no return
// address; re-align and call into Rust.
#[cfg(target_arch = "x86_64")]
global_asm!(".globl _start", "_start:", "xor rbp, rbp", "and rsp, -16", "call {main}", "ud2", main = sym pause_main);

#[cfg(target_arch = "aarch64")]
global_asm!(".globl _start", "_start:", "mov x29, xzr", "mov x30, xzr", "bl {main}", "udf 0", main = sym pause_main);

fn exit(code: usize) -> ! {
    unsafe { syscall4(sys::EXIT_GROUP, code, 0, 0, 0) };
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(2)
}

extern "C" fn pause_main() -> ! {
    let set: u64 = (1 << (SIGINT - 1)) | (1 << (SIGTERM - 1)) | (1 << (SIGCHLD - 1));
    let set_ptr = &set as *const u64 as usize;
    unsafe { syscall4(sys::RT_SIGPROCMASK, SIG_BLOCK, set_ptr, 0, SIGSET_SIZE) };
    let mut info = [0u8; 128];
    loop {
        let sig = unsafe { syscall4(sys::RT_SIGTIMEDWAIT, set_ptr, info.as_mut_ptr() as usize, 0, SIGSET_SIZE) };
        if sig == SIGINT as isize || sig == SIGTERM as isize {
            exit(0);
        }
        // SIGCHLD (or an interrupted wait): reap every child that has exited.
        while unsafe { syscall4(sys::WAIT4, usize::MAX, 0, WNOHANG, 0) } > 0 {}
    }
}
