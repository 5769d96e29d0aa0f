//! The few system calls nix has no safe wrapper for. Every `unsafe` block of the crate lives here.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

/// Arranges for `fd` to be file descriptor 3 (without close-on-exec) in the child `command`
/// spawns, and nothing else.
pub fn pass_fd_as_3(command: &mut tokio::process::Command, fd: RawFd) {
    let pre_exec = move || {
        // SAFETY: runs in the forked child before exec; dup2/fcntl are async-signal-safe and
        // touch only the child's descriptor table.
        unsafe {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure only calls async-signal-safe functions (see above) and allocates nothing.
    unsafe {
        command.pre_exec(pre_exec);
    }
}

/// Takes ownership of descriptor 3, inherited from the parent.
pub fn take_fd3() -> Result<OwnedFd, Errno> {
    // SAFETY: F_GETFD only checks that descriptor 3 is open; nothing else in this freshly
    // exec'd process owns it (the parent passed it for this purpose).
    let open = unsafe { libc::fcntl(3, libc::F_GETFD) };
    if open < 0 {
        return Err(Errno::last());
    }
    // SAFETY: descriptor 3 is open and owned by nobody else in this process.
    let fd = unsafe { OwnedFd::from_raw_fd(3) };
    // re-arm close-on-exec so the container never inherits it
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
    Ok(fd)
}

/// Result of [`fork`].
#[derive(Debug)]
pub enum Forked {
    Parent(Pid),
    Child,
}

/// fork(2). Only called by single-threaded processes: the sandbox init, a container monitor
/// before its runtime starts, the exec helper.
pub fn fork() -> Result<Forked, Errno> {
    // SAFETY: the init process never starts threads, so the child inherits a consistent
    // address space (no locks held by other threads).
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// _exit(2): leaves without running destructors or atexit handlers (after fork).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// Removes one capability from the bounding set.
pub fn capbset_drop(cap: u32) -> Result<(), Errno> {
    // SAFETY: prctl(PR_CAPBSET_DROP, cap) takes plain integers.
    let res = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    Errno::result(res).map(drop)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// capset(2) for the calling thread with 64-bit masks.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let split = |mask: u64| (mask as u32, (mask >> 32) as u32);
    let (e0, e1) = split(effective);
    let (p0, p1) = split(permitted);
    let (i0, i1) = split(inheritable);
    let data = [
        CapData { effective: e0, permitted: p0, inheritable: i0 },
        CapData { effective: e1, permitted: p1, inheritable: i1 },
    ];
    // SAFETY: header and data are valid, properly laid out (repr(C)) and live across the call;
    // version 3 expects exactly two data elements.
    let res = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    Errno::result(res).map(drop)
}

/// pidfd_open(2): a descriptor that becomes readable when `pid` exits.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: plain integer arguments; on success the kernel returns a new descriptor we own.
    let res = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let fd = Errno::result(res)?;
    // SAFETY: `fd` is a fresh descriptor returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Makes the terminal on `fd` the controlling terminal of the calling session leader.
pub fn set_controlling_tty(fd: &impl AsRawFd) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    let res = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(res).map(drop)
}

/// Sets the window size of the terminal on `fd`.
pub fn set_window_size(fd: &impl AsRawFd, rows: u16, cols: u16) -> Result<(), Errno> {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize that lives across the call.
    let res = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size as *const libc::winsize) };
    Errno::result(res).map(drop)
}

/// Reads the window size of the terminal on `fd` (rows, cols).
pub fn window_size(fd: &impl AsRawFd) -> Result<(u16, u16), Errno> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize into memory we own for the duration of the call.
    let res = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size as *mut libc::winsize) };
    Errno::result(res)?;
    Ok((size.ws_row, size.ws_col))
}

/// Brings the network interface `name` up (SIOCGIFFLAGS/SIOCSIFFLAGS on a datagram socket).
pub fn interface_up(name: &str) -> Result<(), Errno> {
    let socket = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= request.ifr_name.len() {
        return Err(Errno::EINVAL);
    }
    for (dst, src) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: the request is a valid ifreq that lives across both calls; the kernel reads the
    // name and reads/writes the flags member of the union.
    unsafe {
        Errno::result(libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request as *mut libc::ifreq))?;
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        Errno::result(libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request as *const libc::ifreq))?;
    }
    Ok(())
}

/// Points descriptors 0-2 at /dev/null (the sandbox init must not hold the container's stdio).
pub fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors; nothing in this single-threaded process
            // holds Rust-level ownership of them.
            unsafe {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}

/// Points stdout at /dev/null (a monitor after reporting to the command that started it).
pub fn stdout_to_null() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto descriptor 1; Rust's stdout handle only ever refers to the number.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
/// `MOUNT_ATTR_NODEV` of fsmount(2)'s attributes.
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

/// Whether `path` (not followed when a symlink) carries the extended attribute `name`.
pub fn has_xattr(path: &std::path::Path, name: &str) -> bool {
    let (Ok(path), Ok(name)) = (cstr(path), std::ffi::CString::new(name)) else { return false };
    // SAFETY: both pointers are valid NUL-terminated strings for the call's duration; a null
    // buffer with size 0 only asks for the value's size.
    let size = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    size >= 0
}

fn cstr(value: &std::path::Path) -> Result<std::ffi::CString, Errno> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(value.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// Mounts an overlay with the new mount API, adding lower layers one by one (`lowerdir+`,
/// Linux 6.8+): no limit on the number of layers, unlike the one-page `lowerdir=` option.
/// `lowers` are top-most first; `nodev` refuses device nodes on the mount.
pub fn mount_overlay_fsconfig(
    target: &std::path::Path,
    lowers: &[std::path::PathBuf],
    upper: Option<(&std::path::Path, &std::path::Path)>,
    nodev: bool,
) -> Result<(), Errno> {
    let fstype = c"overlay";
    // SAFETY: fsopen takes a NUL-terminated string and flags; returns a new descriptor.
    let fd = Errno::result(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let fs = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let set = |key: &std::ffi::CStr, value: &std::path::Path| -> Result<(), Errno> {
        let value = cstr(value)?;
        // SAFETY: key and value are NUL-terminated and live across the call.
        let res = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        Errno::result(res).map(drop)
    };
    for lower in lowers {
        set(c"lowerdir+", lower)?;
    }
    if let Some((upper, work)) = upper {
        set(c"upperdir", upper)?;
        set(c"workdir", work)?;
        // SAFETY: the key is NUL-terminated; flags take no value.
        let res = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_FLAG,
                c"volatile".as_ptr(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        Errno::result(res)?;
    }
    // SAFETY: plain integer arguments on a descriptor we own.
    let res = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(res)?;
    let attributes = if nodev { MOUNT_ATTR_NODEV } else { 0 };
    // SAFETY: plain integer arguments; returns a new descriptor for the detached mount.
    let mfd = Errno::result(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attributes)
    })?;
    // SAFETY: `mfd` is a fresh descriptor owned by nobody else.
    let mount = unsafe { OwnedFd::from_raw_fd(mfd as RawFd) };
    let target = cstr(target)?;
    // SAFETY: the empty path and the target are NUL-terminated and live across the call.
    let res = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(res).map(drop)
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MS_PRIVATE` as mount_setattr's `propagation` field takes it.
const MOUNT_PROPAGATION_PRIVATE: u64 = 0x40000;

/// Makes the mount at `target` and every mount below it read-only and private in one step
/// (mount_setattr with `AT_RECURSIVE`, Linux 5.12+). `ENOSYS` on older kernels.
pub fn mount_setattr_readonly_recursive(target: &std::path::Path) -> Result<(), Errno> {
    let target = cstr(target)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: MOUNT_PROPAGATION_PRIVATE,
        userns_fd: 0,
    };
    let flags = (libc::AT_RECURSIVE | libc::AT_SYMLINK_NOFOLLOW) as libc::c_uint;
    // SAFETY: the path is NUL-terminated and `attr` is a properly laid out `struct mount_attr`;
    // both live across the call, which only reads them (size passed alongside).
    let res = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            target.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(res).map(drop)
}
