//! The kernels of the test-kernel kit, one function each. Each prints what it checked on COM1
//! and passes by writing [`PASS`](crate::kit::PASS) to the debug-exit port; a failed check prints
//! why and exits with a distinct non-zero value, and a kernel that cannot run on the backend
//! says `SKIP:` and why.

pub mod boot_info;
pub mod common;
pub mod cpu_models;
pub mod faults;
pub mod modes;
pub mod outcomes;
pub mod platform;
pub mod simd;
pub mod system;
pub mod tlb;

pub use boot_info::*;
pub use common::{enter_long_mode, enter_real_mode, install_exception_handlers64, Paging32};
pub use cpu_models::*;
pub use faults::*;
pub use modes::*;
pub use outcomes::*;
pub use platform::*;
pub use simd::*;
pub use system::*;
pub use tlb::*;
