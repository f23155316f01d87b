//! Starting, pausing, resuming and stopping a running VM from another thread.

use std::time::{Duration, Instant};

use machine::{Accel, ExitReason, KvmKind};
use testsuite::{harness, kernels};

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pause_resume_and_stop_under_kvm() {
    if let KvmKind::Unavailable(why) = machine::accel::probe_kvm() {
        eprintln!("SKIP: KVM tests need /dev/kvm: {why}");
        return;
    }
    pause_resume_and_stop(Accel::Kvm);
}

#[test]
fn pause_resume_and_stop_under_the_software_cpu() {
    pause_resume_and_stop(Accel::Dbt);
}

fn pause_resume_and_stop(accel: Accel) {
    let path = harness::temp_kernel(&format!("ticker-{accel:?}"), &kernels::ticker());
    let (mut cfg, cap) = harness::config(path.path(), accel, 64 << 20);
    cfg.vcpus = 2; // the idle AP must stop too
    let vm = machine::Vm::new(&cfg).expect("VM builds");
    let handle = vm.handle();
    let runner = std::thread::spawn(move || vm.run());
    let len = || cap.0.lock().len();

    wait_for("output", Duration::from_secs(20), || len() > 3);
    handle.pause();
    assert!(handle.is_paused());
    let frozen = len();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(len(), frozen, "a paused guest kept printing");

    handle.resume();
    wait_for("output after resume", Duration::from_secs(20), || {
        len() > frozen + 3
    });

    handle.stop();
    let reason = runner.join().expect("run thread").expect("run");
    assert_eq!(reason, ExitReason::Stopped);
}
