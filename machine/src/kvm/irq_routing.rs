//! KVM's GSI routing, set as QEMU's `pc` sets it (`kvm_pc_setup_irq_routing`): ISA IRQs
//! 0–15 to the 8259 pair (IRQ 2 is the cascade), GSIs 1–23 to the same IOAPIC pin, and the
//! PIT's IRQ 0 to IOAPIC pin 2 — what the MP table and the MADT's interrupt source override
//! tell the guest. KVM's default routing would send IRQ 0 to pin 0 instead.

use kvm_bindings::{
    kvm_irq_routing_entry, kvm_irq_routing_entry__bindgen_ty_1, kvm_irq_routing_irqchip,
    KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
    KVM_IRQ_ROUTING_IRQCHIP,
};
use kvm_ioctls::VmFd;

use crate::{Error, Result};

/// IOAPIC input pins.
const IOAPIC_PINS: u32 = 24;

/// (GSI, irqchip, pin) for every route.
pub fn pc_routes() -> Vec<(u32, u32, u32)> {
    let mut routes = Vec::new();
    for irq in 0..16 {
        if irq == 2 {
            continue;
        }
        let chip = if irq < 8 {
            KVM_IRQCHIP_PIC_MASTER
        } else {
            KVM_IRQCHIP_PIC_SLAVE
        };
        routes.push((irq, chip, irq % 8));
    }
    for gsi in 0..IOAPIC_PINS {
        match gsi {
            0 => routes.push((0, KVM_IRQCHIP_IOAPIC, 2)),
            2 => {}
            _ => routes.push((gsi, KVM_IRQCHIP_IOAPIC, gsi)),
        }
    }
    routes
}

pub fn set(vm: &VmFd) -> Result<()> {
    let entries: Vec<kvm_irq_routing_entry> = pc_routes()
        .into_iter()
        .map(|(gsi, irqchip, pin)| kvm_irq_routing_entry {
            gsi,
            type_: KVM_IRQ_ROUTING_IRQCHIP,
            u: kvm_irq_routing_entry__bindgen_ty_1 {
                irqchip: kvm_irq_routing_irqchip { irqchip, pin },
            },
            ..Default::default()
        })
        .collect();
    let routing = KvmIrqRouting::from_entries(&entries)
        .map_err(|e| Error::Kvm(format!("building the GSI routing table: {e:?}")))?;
    vm.set_gsi_routing(&routing)
        .map_err(|e| Error::Kvm(format!("KVM_SET_GSI_ROUTING: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pit_reaches_ioapic_pin_2_and_nothing_uses_the_cascade() {
        let r = pc_routes();
        assert!(r.contains(&(0, KVM_IRQCHIP_IOAPIC, 2)));
        assert!(r.contains(&(0, KVM_IRQCHIP_PIC_MASTER, 0)));
        assert!(r.contains(&(12, KVM_IRQCHIP_PIC_SLAVE, 4)));
        assert!(r.contains(&(23, KVM_IRQCHIP_IOAPIC, 23)));
        assert!(!r.iter().any(|&(gsi, _, _)| gsi == 2));
        assert_eq!(r.len(), 15 + 23);
    }
}
