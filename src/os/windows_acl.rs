//! Windows: who besides this user may open a file or folder, from its DACL. Used by
//! `status` (helperd's folders) where Unix looks at the mode bits.

use std::ffi::c_void;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;

use helperd_wire::os::sid::{self, Sid};
use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::{GetNamedSecurityInfoW, SE_FILE_OBJECT};
use windows_sys::Win32::Security::{
    AclSizeInformation, GetAce, GetAclInformation, GetLengthSid, ACCESS_ALLOWED_ACE, ACE_HEADER,
    ACL, ACL_SIZE_INFORMATION, DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
};

/// `ACCESS_ALLOWED_ACE_TYPE` (winnt.h).
const ACCESS_ALLOWED: u8 = 0;

/// Accounts that may reach every user's files anyway, and `CREATOR OWNER` (a template
/// for new files, not an account): granting them access is no exposure.
const EXPECTED: &[&str] = &["S-1-5-18", "S-1-5-32-544", "S-1-3-0"];

/// Well-known names, for the message.
fn name_of(sid: &str) -> String {
    let name = match sid {
        "S-1-1-0" => "Everyone",
        "S-1-5-11" => "Authenticated Users",
        "S-1-5-32-545" => "Users",
        "S-1-5-32-546" => "Guests",
        "S-1-5-4" => "INTERACTIVE",
        _ => return sid.to_string(),
    };
    format!("{name} ({sid})")
}

/// The accounts other than this user (and the system's own) that the DACL of `path`
/// allows in, by name; empty when none. A missing DACL allows everyone.
pub fn others_with_access(path: &Path) -> io::Result<Vec<String>> {
    with_dacl(path, |dacl| match dacl {
        None => Ok(vec![
            "everyone (the folder has no access list at all)".to_string()
        ]),
        Some(dacl) => allowed_others(dacl),
    })
}

fn allowed_others(dacl: *const ACL) -> io::Result<Vec<String>> {
    let me = sid::current()?;
    let mut others = Vec::new();
    for (who, _mask) in allowed_entries(dacl)? {
        let text = who.to_string();
        if who != me && !EXPECTED.contains(&text.as_str()) {
            let name = name_of(&text);
            if !others.contains(&name) {
                others.push(name);
            }
        }
    }
    Ok(others)
}

/// `INHERIT_ONLY_ACE`: an entry for what is created inside, not for the object itself.
const INHERIT_ONLY: u8 = 0x08;

/// The access-allowed entries of `dacl` that apply to the object itself: who, and the
/// rights granted.
fn allowed_entries(dacl: *const ACL) -> io::Result<Vec<(Sid, u32)>> {
    let mut info = ACL_SIZE_INFORMATION {
        AceCount: 0,
        AclBytesInUse: 0,
        AclBytesFree: 0,
    };
    // SAFETY: `dacl` is a valid ACL; `info` is writable for its size.
    let ok = unsafe {
        GetAclInformation(
            dacl,
            (&mut info as *mut ACL_SIZE_INFORMATION).cast(),
            std::mem::size_of::<ACL_SIZE_INFORMATION>() as u32,
            AclSizeInformation,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut entries = Vec::new();
    for index in 0..info.AceCount {
        let mut ace: *mut c_void = std::ptr::null_mut();
        // SAFETY: `index` is below the ACL's entry count.
        if unsafe { GetAce(dacl, index, &mut ace) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: every ACE starts with an ACE_HEADER.
        let header = unsafe { *(ace as *const ACE_HEADER) };
        if header.AceType != ACCESS_ALLOWED || header.AceFlags & INHERIT_ONLY != 0 {
            continue;
        }
        // SAFETY: an access-allowed ACE; its SID starts at SidStart and is as long as
        // GetLengthSid says.
        let entry = unsafe {
            let allowed = ace as *const ACCESS_ALLOWED_ACE;
            let start = std::ptr::addr_of!((*allowed).SidStart);
            let len = GetLengthSid(start as *mut c_void) as usize;
            let who = Sid::from_bytes(std::slice::from_raw_parts(start as *const u8, len).to_vec());
            (who, (*allowed).Mask)
        };
        entries.push(entry);
    }
    Ok(entries)
}

/// Accounts trusted with the system's files: SYSTEM, Administrators, TrustedInstaller.
const SYSTEM_ACCOUNTS: &[&str] = &[
    "S-1-5-18",
    "S-1-5-32-544",
    "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",
];

/// Rights that let their holder change a file: write or append, delete, change its
/// access list or owner, and the generic forms.
const CHANGES_A_FILE: u32 = 0x2 | 0x4 | 0x1_0000 | 0x4_0000 | 0x8_0000 | 0x1000_0000 | 0x4000_0000;

/// Rights that let their holder replace a file inside a folder: delete a child, delete
/// or re-own the folder, change its access list, and full control. Creating new files
/// (which users may in `%ProgramData%`) is not among them: a policy file a user creates
/// restricts that user only.
const REPLACES_IN_A_FOLDER: u32 = 0x40 | 0x1_0000 | 0x4_0000 | 0x8_0000 | 0x1000_0000;

/// The accounts other than the system's own that may change the policy file `path` (or,
/// for a folder, replace a file inside it), by name; empty when none. A missing DACL lets
/// everyone in.
pub fn untrusted_writers(path: &Path) -> io::Result<Vec<String>> {
    let mask = match std::fs::metadata(path)?.is_dir() {
        true => REPLACES_IN_A_FOLDER,
        false => CHANGES_A_FILE,
    };
    with_dacl(path, |dacl| match dacl {
        None => Ok(vec!["everyone (no access list at all)".to_string()]),
        Some(dacl) => writers_among(dacl, mask),
    })
}

fn writers_among(dacl: *const ACL, mask: u32) -> io::Result<Vec<String>> {
    let mut writers = Vec::new();
    for (who, rights) in allowed_entries(dacl)? {
        let text = who.to_string();
        if rights & mask != 0 && !SYSTEM_ACCOUNTS.contains(&text.as_str()) {
            let name = name_of(&text);
            if !writers.contains(&name) {
                writers.push(name);
            }
        }
    }
    Ok(writers)
}

/// Runs `f` on the DACL of `path` (`None`: the object has none).
fn with_dacl<T>(path: &Path, f: impl FnOnce(Option<*const ACL>) -> io::Result<T>) -> io::Result<T> {
    let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the name is NUL-terminated; the call allocates `descriptor` (freed below)
    // and points `dacl` into it.
    let rc = unsafe {
        GetNamedSecurityInfoW(
            wide.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut descriptor,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    let result = f((!dacl.is_null()).then_some(dacl as *const ACL));
    // SAFETY: allocated by GetNamedSecurityInfoW, freed once; `dacl` is not used after.
    unsafe { LocalFree(descriptor) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SetNamedSecurityInfoW,
        SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::{
        GetSecurityDescriptorDacl, PROTECTED_DACL_SECURITY_INFORMATION,
    };

    /// Gives `path` exactly the DACL of `sddl`.
    fn set_dacl(path: &Path, sddl: &str) {
        let wide_sddl: Vec<u16> = std::ffi::OsStr::new(sddl)
            .encode_wide()
            .chain(Some(0))
            .collect();
        let wide_path: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
        let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        let mut present = 0;
        let mut defaulted = 0;
        let mut dacl: *mut ACL = std::ptr::null_mut();
        // SAFETY: test-only calls with valid, NUL-terminated strings and out-pointers.
        unsafe {
            assert_ne!(
                ConvertStringSecurityDescriptorToSecurityDescriptorW(
                    wide_sddl.as_ptr(),
                    SDDL_REVISION_1,
                    &mut descriptor,
                    std::ptr::null_mut(),
                ),
                0
            );
            assert_ne!(
                GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted),
                0
            );
            let rc = SetNamedSecurityInfoW(
                wide_path.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            );
            assert_eq!(rc, 0, "SetNamedSecurityInfoW");
            LocalFree(descriptor);
        }
    }

    /// The DACL of an SDDL string, in memory (Wine parses SDDL as Windows does, though it
    /// keeps no ACL on its files).
    fn writers_of(sddl: &str, mask: u32) -> Vec<String> {
        let wide: Vec<u16> = std::ffi::OsStr::new(sddl)
            .encode_wide()
            .chain(Some(0))
            .collect();
        let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut ACL = std::ptr::null_mut();
        // SAFETY: test-only calls with a valid, NUL-terminated string and out-pointers.
        unsafe {
            assert_ne!(
                ConvertStringSecurityDescriptorToSecurityDescriptorW(
                    wide.as_ptr(),
                    SDDL_REVISION_1,
                    &mut descriptor,
                    std::ptr::null_mut(),
                ),
                0
            );
            assert_ne!(
                GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted),
                0
            );
            let writers = writers_among(dacl, mask).unwrap();
            LocalFree(descriptor);
            writers
        }
    }

    /// The policy file's rule: only the system's accounts may change it; users may read
    /// it, and may create files in its folder (a policy of their own only binds them).
    #[test]
    fn only_system_accounts_may_change_a_trusted_policy() {
        let stock = "D:(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1200a9;;;BU)";
        assert_eq!(writers_of(stock, CHANGES_A_FILE), Vec::<String>::new());
        let users_write = "D:(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1301bf;;;BU)";
        assert_eq!(
            writers_of(users_write, CHANGES_A_FILE),
            vec!["Users (S-1-5-32-545)".to_string()]
        );
        // %ProgramData%'s own: users add files and folders, and own what they create.
        let folder = "D:(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1200a9;;;BU)(A;;0x116;;;BU)(A;CIIO;FA;;;CO)";
        assert_eq!(
            writers_of(folder, REPLACES_IN_A_FOLDER),
            Vec::<String>::new()
        );
        let everyone_full = "D:(A;;FA;;;SY)(A;;FA;;;WD)";
        assert_eq!(
            writers_of(everyone_full, REPLACES_IN_A_FOLDER),
            vec!["Everyone (S-1-1-0)".to_string()]
        );
    }

    #[test]
    fn a_folder_open_to_users_is_reported_and_an_owner_only_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let me = sid::current().unwrap();
        set_dacl(
            dir.path(),
            &format!("D:P(A;OICI;FA;;;{me})(A;OICI;FA;;;SY)"),
        );
        let owner_only = others_with_access(dir.path()).unwrap();
        if owner_only.iter().any(|who| who.starts_with("Everyone")) {
            // Windows keeps the DACL just set; Wine 8 does not keep file ACLs and reports
            // its default (Everyone) whatever was set.
            eprintln!("skipped: this system does not keep file ACLs (Wine)");
            return;
        }
        assert_eq!(owner_only, Vec::<String>::new());
        set_dacl(
            dir.path(),
            &format!("D:P(A;OICI;FA;;;{me})(A;OICI;FR;;;BU)(A;OICI;FR;;;WD)"),
        );
        assert_eq!(
            others_with_access(dir.path()).unwrap(),
            vec![
                "Users (S-1-5-32-545)".to_string(),
                "Everyone (S-1-1-0)".to_string()
            ]
        );
        set_dacl(dir.path(), &format!("D:P(A;OICI;FA;;;{me})"));
    }
}
