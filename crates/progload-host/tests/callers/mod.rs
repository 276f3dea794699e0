//! Shared by the oracle tests that run the kernel's exec as other callers (the probe's child
//! takes the credentials) and compare it with the plan: credentials, personality, mounts,
//! mmap_min_addr and binfmt_misc.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;

use progload::binfmt::misc::Rule;
use progload::profile::Credentials;
use progload::Profile;
use progload_host::check::{check, CheckRequest, Verdict};

/// Fails (never skips) when not root: taking other credentials needs it.
pub fn require_root(why: &str) {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "this test needs root: {why}"
    );
}

/// uid = euid = gid = egid = `id`, no supplementary groups, no no_new_privs.
pub fn user(id: u32) -> Credentials {
    Credentials {
        uid: id,
        euid: id,
        gid: id,
        egid: id,
        groups: vec![],
        no_new_privs: false,
    }
}

/// Root and uid 1000.
pub fn root_and_user() -> Vec<(&'static str, Credentials)> {
    vec![("root", Credentials::root()), ("user", user(1000))]
}

/// The kernel's exec of `path` (argv `["prog"]`, envp `["A=1"]`, cwd `/`) as `caller` with
/// extra personality bits and binfmt_misc rules, against the plan.
pub fn check_as(
    profile: &Profile,
    path: &[u8],
    caller: &Credentials,
    personality: u32,
    misc_rules: &[Rule],
) -> Verdict {
    let req = CheckRequest {
        path: path.to_vec(),
        argv: Some(vec![b"prog".to_vec()]),
        envp: vec![b"A=1".to_vec()],
        cwd: "/".into(),
        stack_rlimit: None,
        misc_rules: misc_rules.to_vec(),
        credentials: Some(caller.clone()),
        personality,
    };
    check(&req, profile).unwrap()
}

/// A short name for a verdict: `identical`, `identical (set-id)`, `refused EACCES`, `killed`,
/// or `DISAGREE`.
pub fn kind(v: &Verdict) -> String {
    match v {
        Verdict::Identical => "identical".into(),
        Verdict::IdenticalModuloRandomization => "identical (set-id)".into(),
        Verdict::SameErrno(e) => format!("refused {}", e.name()),
        Verdict::BothFatal => "killed".into(),
        Verdict::Differ(_) | Verdict::Mismatch(..) => "DISAGREE".into(),
        Verdict::NotModelled { .. } => "not modelled".into(),
    }
}

/// The results of a files × callers matrix.
pub struct Matrix {
    /// `(file, caller, kind)` per case, in order.
    pub cases: Vec<(String, String, String)>,
    /// The disagreements, in full.
    pub failures: Vec<String>,
}

impl Matrix {
    /// Runs every file as every caller.
    pub fn run(
        files: &[(&str, Vec<u8>)],
        callers: &[(&str, Credentials)],
        personality: u32,
    ) -> Matrix {
        let profile = progload_host::host_profile().unwrap();
        let mut m = Matrix {
            cases: Vec::new(),
            failures: Vec::new(),
        };
        for (fname, path) in files {
            for (cname, c) in callers {
                let v = check_as(&profile, path, c, personality, &[]);
                if !v.agrees() {
                    m.failures.push(format!("{fname} as {cname}: {v:?}"));
                }
                m.cases
                    .push((fname.to_string(), cname.to_string(), kind(&v)));
            }
        }
        m
    }

    /// How many cases of each kind.
    pub fn kinds(&self) -> BTreeMap<&str, usize> {
        let mut k = BTreeMap::new();
        for (_, _, kind) in &self.cases {
            *k.entry(kind.as_str()).or_default() += 1;
        }
        k
    }

    /// Prints the counts per kind and fails on any disagreement.
    pub fn assert_all_agree(&self) {
        println!("{} cases: {:?}", self.cases.len(), self.kinds());
        assert!(
            self.failures.is_empty(),
            "{} of {} disagree:\n{}",
            self.failures.len(),
            self.cases.len(),
            self.failures.join("\n")
        );
    }

    /// Fails unless every case has the kind `expect` gives for its file and caller (what the
    /// scenario is meant to exercise, so that a matrix cannot pass vacuously).
    pub fn assert_kinds(&self, expect: impl Fn(&str, &str) -> &'static str) {
        for (f, c, k) in &self.cases {
            let want = expect(f, c);
            assert_eq!(k, want, "{f} as {c}");
        }
    }
}
