fn main() {
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let l = kvm.get_msr_index_list().unwrap();
    for m in l.as_slice() {
        if *m >= 0x4000_0000 {
            println!("{m:#x}");
        }
    }
    let f = kvm.get_msr_feature_index_list().map(|l| l.as_slice().len());
    println!("features: {f:?}");
}
