//! Windows: which program a pipe client runs (`QueryFullProcessImageNameW`).

use std::os::windows::ffi::OsStringExt;

use windows_sys::Win32::Foundation::{CloseHandle, FALSE};
use windows_sys::Win32::System::Threading::{
    OpenProcess, QueryFullProcessImageNameW, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// The executable of process `pid`.
pub fn peer_exe(pid: i32) -> Option<String> {
    // SAFETY: a plain call; the handle is closed below.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid as u32) };
    if process.is_null() {
        return None;
    }
    let mut buf = vec![0u16; 32 * 1024];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` is writable for `len` UTF-16 units; the call updates `len`.
    let ok = unsafe {
        QueryFullProcessImageNameW(process, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len)
    };
    // SAFETY: opened above, closed once.
    unsafe { CloseHandle(process) };
    if ok == 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(
        std::ffi::OsString::from_wide(&buf)
            .to_string_lossy()
            .into_owned(),
    )
}

/// Nothing to do: measured only on Linux, whose page cache maps program text in large
/// folios (see the Linux version).
pub fn map_program_text_finely() {}

/// The Windows heap returns freed memory by itself.
pub fn trim_memory() {}
