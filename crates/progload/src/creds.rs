//! The new credentials: `bprm_fill_uid()` (`fs/exec.c`) and `cap_bprm_creds_from_file()`
//! (`security/commoncap.c`): set-id bits, `no_new_privs`, `nosuid` mounts, `AT_SECURE`, and
//! whether the personality's `PER_CLEAR_ON_SETID` bits are cleared.

use crate::fs::Metadata;
use crate::profile::Profile;

/// The credentials after the exec (`bprm->cred`) and `AT_SECURE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewCredentials {
    /// Real uid.
    pub uid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Saved uid.
    pub suid: u32,
    /// Filesystem uid.
    pub fsuid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Saved gid.
    pub sgid: u32,
    /// Filesystem gid.
    pub fsgid: u32,
    /// `bprm->secureexec` (AT_SECURE).
    pub secureexec: bool,
    /// The exec is set-id or gains capabilities (personality bits are cleared).
    pub privileged: bool,
    /// The new process has CAP_SYS_RAWIO in effect (it may map below `mmap_min_addr`).
    pub cap_sys_rawio: bool,
    /// `no_new_privs` stays set.
    pub no_new_privs: bool,
    /// The new process has CAP_SYS_ADMIN in effect (overcommit's admin reserve does not apply
    /// to it), taken, like CAP_SYS_RAWIO, to be in the bounding set of a root caller.
    pub cap_sys_admin: bool,
}

/// `bprm_fill_uid()` and `cap_bprm_creds_from_file()`: the credentials after executing a file
/// with `meta` (the file the credentials come from: the program, or a binfmt_misc `C` rule's
/// script) by the caller the profile describes.
pub fn compute(profile: &Profile, meta: &Metadata) -> NewCredentials {
    let old = &profile.credentials;
    let (mut euid, mut egid) = (old.euid, old.egid);
    let mut per_clear = false;
    if !meta.nosuid && !old.no_new_privs {
        if meta.mode & 0o4000 != 0 {
            euid = meta.uid;
            per_clear = true;
        }
        if meta.mode & 0o2000 != 0 && meta.mode & 0o010 != 0 {
            egid = meta.gid;
            per_clear = true;
        }
    }
    let (uid, gid) = (old.uid, old.gid);
    let old_caps = old.euid == 0 || old.uid == 0;
    let new_caps = euid == 0 || uid == 0;
    let gained = new_caps && !old_caps;
    // `is_setid`: an effective id differing from the old real one. (The capability rule of
    // AT_SECURE, a non-root uid with euid 0, is a case of it.)
    let is_setid = euid != old.uid || egid != old.gid;
    // handle_privileged_root() decides the effective capabilities from the euid before any
    // downgrade: a new euid 0 has them all (from the bounding set), another euid none,
    // whatever the downgrade below makes of the ids (observed on 5.10.262: uid 1000 with
    // euid 0 under no_new_privs runs as euid 1000 and may still map page 0).
    let effective_caps = euid == 0;
    let secureexec = if profile.kernel.rules().exec_id_changed_from_effective {
        // 6.17: the downgrade to the real ids under no_new_privs (or an unprivileged tracer,
        // not modelled) applies when the exec changes an id: a new euid, or an egid the
        // caller is not already in (in_group_p(): the old egid or a supplementary group).
        // no_new_privs already kept the set-id bits out above, so nothing changes and a
        // caller's differing real and effective ids survive the exec (observed on 6.18:
        // tests/credentials.rs). AT_SECURE: such a change, or is_setid.
        let changed = euid != old.euid || (egid != old.egid && !old.groups.contains(&egid));
        is_setid || changed
    } else {
        // Before: the downgrade applies whenever is_setid, so under no_new_privs a caller
        // whose effective ids differ from its real ones gets the real ones (observed on
        // 5.10, 6.1 and 6.12 in the kernel farm); AT_SECURE is is_setid as computed before
        // the downgrade.
        if old.no_new_privs && is_setid {
            euid = uid;
            egid = gid;
        }
        is_setid
    };
    NewCredentials {
        uid,
        euid,
        suid: euid,
        fsuid: euid,
        gid,
        egid,
        sgid: egid,
        fsgid: egid,
        secureexec,
        privileged: per_clear || gained,
        no_new_privs: old.no_new_privs,
        // The segments are mapped after commit_creds(): the new effective capabilities
        // decide, which a new euid 0 takes from the bounding set (handle_privileged_root()).
        cap_sys_rawio: effective_caps && profile.cap_sys_rawio,
        cap_sys_admin: effective_caps,
    }
}
