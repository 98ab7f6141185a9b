//! Benchmarks that need more than a command's own timers: `kmatrix bench peers` runs the same
//! task with kmatrix and with other tools that boot kernels in QEMU (vmtest, virtme-ng),
//! installed on demand into a bench directory of the cache; `kmatrix bench exec` takes `exec`
//! apart phase by phase (`exec`). Not for kmatrix's own boot and matrix timings (`bench boot`,
//! `bench matrix` are in the CLI, on the session and the scheduler).

#![warn(missing_docs)]

pub mod exec;
pub mod peers;
