//! Running cases on both sides, comparing, reporting and shrinking.

use iced_x86::{Decoder, DecoderOptions};

use super::case::{Case, Outcome, REG_NAMES};
use super::gen::{self, Rng};
use super::host::HostOracle;
use super::soft::{undefined_flags, SoftRunner, COMPARED_FLAGS};

/// Differences between the host's and the interpreter's outcome, if any.
pub fn compare(
    case: &Case,
    host: &Outcome,
    soft: &Outcome,
    executed: &[iced_x86::Instruction],
) -> Option<String> {
    compare_with(case, host, soft, executed, false)
}

/// The distance in ulps between two extended values of the same sign (`None` across signs
/// or classes).
fn ulps(a: &[u8; 10], b: &[u8; 10]) -> Option<u128> {
    let v = |x: &[u8; 10]| {
        let mut w = [0u8; 16];
        w[..10].copy_from_slice(x);
        u128::from_le_bytes(w)
    };
    let (a, b) = (v(a), v(b));
    if a >> 79 != b >> 79 || (a >> 64) & 0x7fff == 0x7fff || (b >> 64) & 0x7fff == 0x7fff {
        return None;
    }
    // Consecutive values are consecutive keys, across exponents and into the denormals.
    let key = |x: u128| {
        let e = (x >> 64) & 0x7fff;
        let sig = x & u128::from(u64::MAX);
        if e == 0 {
            sig
        } else {
            e << 63 | (sig & !(1 << 63))
        }
    };
    Some(key(a).abs_diff(key(b)))
}

/// As [`compare`]; with `within_ulp`, x87 registers may differ by one ulp and C1 (the
/// rounding direction) is not compared: the transcendental instructions are specified to
/// within an ulp, and parts differ there.
pub fn compare_with(
    case: &Case,
    host: &Outcome,
    soft: &Outcome,
    executed: &[iced_x86::Instruction],
    within_ulp: bool,
) -> Option<String> {
    let mut diffs = Vec::new();
    if host.exception != soft.exception {
        diffs.push(format!(
            "exception: host {:?}, interpreter {:?}",
            host.exception, soft.exception
        ));
    }
    if host.rip != soft.rip {
        diffs.push(format!(
            "rip: host {:#x}, interpreter {:#x}",
            host.rip, soft.rip
        ));
    }
    for ((name, h), s) in REG_NAMES.iter().zip(host.regs).zip(soft.regs) {
        if h != s {
            diffs.push(format!("{name}: host {h:#x}, interpreter {s:#x}"));
        }
    }
    for (k, (h, s)) in host.xmm.iter().zip(&soft.xmm).enumerate() {
        if h != s {
            diffs.push(format!("xmm{k}: host {h:#034x}, interpreter {s:#034x}"));
        }
    }
    for (k, (h, s)) in host.st.iter().zip(&soft.st).enumerate() {
        if h != s && within_ulp && ulps(h, s) == Some(1) {
            continue;
        }
        if h != s {
            diffs.push(format!("st{k}: host {h:02x?}, interpreter {s:02x?}"));
        }
    }
    // C1 says which way an approximation was rounded, which is the part's own business
    // (its internal value is not the exact one) unless a stack fault (SF) set it.
    let c1 = if within_ulp && host.fsw & (1 << 6) == 0 {
        1 << 9
    } else {
        0
    };
    if (host.fcw, host.fsw & !c1, host.ftw) != (soft.fcw, soft.fsw & !c1, soft.ftw) {
        diffs.push(format!(
            "fcw/fsw/ftw: host {:#x}/{:#x}/{:#x}, interpreter {:#x}/{:#x}/{:#x}",
            host.fcw, host.fsw, host.ftw, soft.fcw, soft.fsw, soft.ftw
        ));
    }
    if host.mxcsr != soft.mxcsr {
        diffs.push(format!(
            "mxcsr: host {:#x}, interpreter {:#x}",
            host.mxcsr, soft.mxcsr
        ));
    }
    let mask = COMPARED_FLAGS & !undefined_flags(executed);
    if host.rflags & mask != soft.rflags & mask {
        diffs.push(format!(
            "rflags (compared bits {mask:#x}): host {:#x}, interpreter {:#x}",
            host.rflags & mask,
            soft.rflags & mask
        ));
    }
    if let Some(at) = (0..host.data.len()).find(|&k| host.data[k] != soft.data[k]) {
        let end = (at + 16).min(host.data.len());
        diffs.push(format!(
            "data at +{at:#x}: host {:02x?}, interpreter {:02x?}",
            &host.data[at..end],
            &soft.data[at..end]
        ));
    }
    if diffs.is_empty() {
        None
    } else {
        let regs: Vec<String> = (0..16)
            .map(|k| format!("{}={:#x}", REG_NAMES[k], case.regs[k]))
            .collect();
        // The XMM registers the code names, and MXCSR.
        let text = case.disassemble();
        let xmm: Vec<String> = (0..16)
            .filter(|k| {
                let name = format!("xmm{k}");
                text.split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| w == name)
            })
            .map(|k| format!("xmm{k}={:#034x}", case.xmm[k]))
            .collect();
        let simd = if xmm.is_empty() {
            String::new()
        } else {
            format!("\ninitial: mxcsr={:#x} {}", case.mxcsr, xmm.join(" "))
        };
        let mmx: Vec<String> = (0..8)
            .filter(|k| text.contains(&format!("mm{k}")))
            .map(|k| format!("mm{k}={:#018x}", case.mm[k]))
            .collect();
        let simd = if mmx.is_empty() {
            simd
        } else {
            format!("{simd}\ninitial: {}", mmx.join(" "))
        };
        let simd = match &case.fpu {
            None => simd,
            Some(f) => format!(
                "{simd}\ninitial: fcw={:#x} fsw={:#x} ftw={:#x} st={:02x?}",
                f.fcw, f.fsw, f.ftw, f.st
            ),
        };
        Some(format!(
            "{}-bit code:\n{}initial: {} rflags={:#x}{}\n{}",
            case.bitness(),
            text,
            regs.join(" "),
            case.rflags,
            simd,
            diffs.join("\n")
        ))
    }
}

/// What one case gave.
#[derive(Debug)]
pub enum Verdict {
    Same,
    /// Equal but for a last-bit difference where the architecture allows one.
    WithinUlp,
    Differs(String),
    /// The run depended on behaviour the architecture leaves undefined; not compared.
    Undefined(String),
}

impl Verdict {
    pub fn differs(&self) -> bool {
        matches!(self, Verdict::Differs(_))
    }
}

/// Both sides, one case.
pub struct Differ {
    pub host: HostOracle,
    pub soft: SoftRunner,
}

impl Differ {
    pub fn new() -> std::io::Result<Self> {
        Ok(Differ {
            host: HostOracle::new()?,
            soft: SoftRunner::new(),
        })
    }

    pub fn check(&mut self, case: &Case) -> std::io::Result<Verdict> {
        let (host, flags) = self.host.run(case)?;
        let mut case = case.clone();
        case.rflags = flags & !0x202;
        let (soft, executed) = self.soft.run(&case);
        if let Some(why) = soft.undefined {
            return Ok(Verdict::Undefined(why));
        }
        Ok(match compare(&case, &host, &soft, &executed) {
            None => Verdict::Same,
            Some(report) => {
                let trans = executed.iter().any(|i| is_transcendental(i.mnemonic()));
                if trans && compare_with(&case, &host, &soft, &executed, true).is_none() {
                    Verdict::WithinUlp
                } else {
                    Verdict::Differs(report)
                }
            }
        })
    }

    /// Makes a failing case smaller: drops instructions, then zeroes registers, while it
    /// still fails.
    pub fn shrink(&mut self, case: &Case) -> std::io::Result<Case> {
        let mut best = case.clone();
        loop {
            let mut improved = false;
            let instrs = split(&best);
            for skip in 0..instrs.len().saturating_sub(1) {
                let mut c = best.clone();
                c.code = instrs
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != skip)
                    .flat_map(|(_, b)| b.iter().copied())
                    .collect();
                c.instructions = c.instructions.saturating_sub(1);
                if self.check(&c)?.differs() {
                    best = c;
                    improved = true;
                    break;
                }
            }
            if !improved {
                break;
            }
        }
        for k in 0..16 {
            if best.regs[k] == 0 || k == 4 {
                continue;
            }
            let mut c = best.clone();
            c.regs[k] = 0;
            if self.check(&c)?.differs() {
                best = c;
            }
        }
        Ok(best)
    }
}

fn is_transcendental(m: iced_x86::Mnemonic) -> bool {
    use iced_x86::Mnemonic as M;
    matches!(
        m,
        M::F2xm1 | M::Fyl2x | M::Fyl2xp1 | M::Fptan | M::Fpatan | M::Fsin | M::Fcos | M::Fsincos
    )
}

/// The case's code as its instructions' bytes.
fn split(case: &Case) -> Vec<Vec<u8>> {
    let mut d = Decoder::with_ip(case.bitness(), &case.code, 0, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut pos = 0usize;
    for i in &mut d {
        out.push(case.code[pos..pos + i.len()].to_vec());
        pos += i.len();
    }
    out
}

/// Results of one class.
#[derive(Debug, Default, Clone)]
pub struct ClassReport {
    pub class: String,
    pub compat: bool,
    pub cases: u64,
    pub instructions: u64,
    pub mismatches: u64,
    /// Cases left out because they depended on architecturally undefined behaviour.
    pub undefined: u64,
    /// Cases that matched to within the last bit of a transcendental result.
    pub within_ulp: u64,
    /// The first mismatches, shrunk.
    pub examples: Vec<String>,
}

/// Runs `cases` random cases of `class`, seeded by `seed`.
pub fn run_class(
    differ: &mut Differ,
    class: &str,
    compat: bool,
    cases: u64,
    seed: u64,
    shrink: bool,
) -> std::io::Result<ClassReport> {
    let mut report = ClassReport {
        class: class.to_string(),
        compat,
        ..Default::default()
    };
    let mut rng = Rng::new(seed ^ fxhash(class) ^ u64::from(compat));
    for _ in 0..cases {
        let Some(case) = gen::generate(&mut rng, class, compat, 6) else {
            continue;
        };
        match differ.check(&case)? {
            Verdict::Undefined(_) => {
                report.undefined += 1;
                continue;
            }
            Verdict::Same => {}
            Verdict::WithinUlp => report.within_ulp += 1,
            Verdict::Differs(first) => {
                report.mismatches += 1;
                if report.examples.len() < 3 {
                    let small = if shrink {
                        differ.shrink(&case)?
                    } else {
                        case.clone()
                    };
                    match differ.check(&small)? {
                        Verdict::Differs(text) => report.examples.push(text),
                        // A mismatch that does not come back is reported as it first was.
                        _ => report.examples.push(format!(
                            "(did not reproduce on a second run; as first seen)\n{first}"
                        )),
                    }
                }
            }
        }
        report.cases += 1;
        report.instructions += case.instructions as u64;
    }
    Ok(report)
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
