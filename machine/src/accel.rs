//! Choosing the execution backend.
//!
//! `auto` takes KVM only when it is backed by hardware virtualization (VT-x/AMD-V). A KVM that
//! is not — PVM (`kvm_pvm`), which runs guest user mode natively but emulates guest kernel mode
//! instruction by instruction — cannot boot a stock kernel in useful time, so `auto` passes it
//! over for the software CPU and says why.

use std::path::Path;

/// The accelerator the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Accel {
    Kvm,
    /// The software CPU (QEMU's `tcg`).
    Dbt,
    #[default]
    Auto,
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "dbt" | "tcg" => Ok(Accel::Dbt),
            "auto" => Ok(Accel::Auto),
            _ => Err(format!(
                "unknown accelerator '{s}' (expected kvm, dbt, tcg or auto)"
            )),
        }
    }
}

/// What `/dev/kvm` is on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvmKind {
    /// Backed by VT-x or AMD-V.
    Hardware,
    /// PVM or another software-assisted KVM: usable, but kernel mode is emulated.
    Paravirtual(String),
    /// No usable /dev/kvm.
    Unavailable(String),
}

/// Probes `/dev/kvm` and how it is implemented.
pub fn probe_kvm() -> KvmKind {
    if let Err(e) = kvm_ioctls::Kvm::new() {
        return KvmKind::Unavailable(format!("cannot open /dev/kvm: {e}"));
    }
    let modules = Path::new("/sys/module");
    if modules.join("kvm_pvm").exists() {
        return KvmKind::Paravirtual(
            "/dev/kvm is PVM (kvm_pvm): guest kernel mode is emulated, not hardware-virtualized"
                .into(),
        );
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default();
    let has_hw = flags.split_whitespace().any(|f| f == "vmx" || f == "svm");
    let hw_module = modules.join("kvm_intel").exists() || modules.join("kvm_amd").exists();
    if has_hw && hw_module {
        KvmKind::Hardware
    } else {
        KvmKind::Paravirtual(format!(
            "/dev/kvm works but the host CPU shows no {} (no VT-x/AMD-V)",
            if has_hw {
                "kvm_intel/kvm_amd module"
            } else {
                "vmx/svm flag"
            }
        ))
    }
}

/// The backend actually used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Kvm,
    Software,
}

/// Resolves the user's choice against what the host offers.
pub fn select(requested: Accel) -> Result<Backend, String> {
    match requested {
        Accel::Kvm => match probe_kvm() {
            KvmKind::Unavailable(why) => Err(format!("--accel kvm: {why}")),
            KvmKind::Paravirtual(why) => {
                // Once per process: a rebooting guest rebuilds the VM.
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| log::warn!("{why}; kernel-mode guest code will be slow"));
                Ok(Backend::Kvm)
            }
            KvmKind::Hardware => Ok(Backend::Kvm),
        },
        Accel::Dbt => Ok(Backend::Software),
        Accel::Auto => match probe_kvm() {
            KvmKind::Hardware => {
                log::info!("accel auto: using KVM (hardware virtualization)");
                Ok(Backend::Kvm)
            }
            KvmKind::Paravirtual(why) | KvmKind::Unavailable(why) => {
                log::info!("accel auto: not using KVM ({why}); using the software CPU");
                Ok(Backend::Software)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_spellings_parse() {
        assert_eq!("tcg".parse::<Accel>(), Ok(Accel::Dbt));
        assert_eq!("kvm".parse::<Accel>(), Ok(Accel::Kvm));
        assert!("hvf".parse::<Accel>().unwrap_err().contains("hvf"));
    }

    #[test]
    fn auto_never_picks_a_paravirtual_kvm() {
        if let KvmKind::Paravirtual(_) | KvmKind::Unavailable(_) = probe_kvm() {
            assert_eq!(select(Accel::Auto), Ok(Backend::Software));
        }
    }
}
