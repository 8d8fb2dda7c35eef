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
    let found = if dacl.is_null() {
        Ok(vec![
            "everyone (the folder has no access list at all)".to_string()
        ])
    } else {
        allowed_others(dacl)
    };
    // SAFETY: allocated by GetNamedSecurityInfoW, freed once; `dacl` is not used after.
    unsafe { LocalFree(descriptor) };
    found
}

fn allowed_others(dacl: *const ACL) -> io::Result<Vec<String>> {
    let me = sid::current()?;
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
    let mut others = Vec::new();
    for index in 0..info.AceCount {
        let mut ace: *mut c_void = std::ptr::null_mut();
        // SAFETY: `index` is below the ACL's entry count.
        if unsafe { GetAce(dacl, index, &mut ace) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: every ACE starts with an ACE_HEADER.
        if unsafe { (*(ace as *const ACE_HEADER)).AceType } != ACCESS_ALLOWED {
            continue;
        }
        // SAFETY: an access-allowed ACE; its SID starts at SidStart and is as long as
        // GetLengthSid says.
        let who = unsafe {
            let start = std::ptr::addr_of!((*(ace as *const ACCESS_ALLOWED_ACE)).SidStart);
            let len = GetLengthSid(start as *mut c_void) as usize;
            Sid::from_bytes(std::slice::from_raw_parts(start as *const u8, len).to_vec())
        };
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
