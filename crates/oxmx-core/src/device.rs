//! Devices and streams. Arrays have no device: each operation records the stream it
//! runs on. The current stream is thread-local so `stream=` and `with mx.stream(s)`
//! apply without threading a parameter through every op.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DeviceType {
    Cpu,
    Gpu,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Device {
    pub kind: DeviceType,
    pub index: usize,
}

impl Device {
    pub const CPU: Device = Device {
        kind: DeviceType::Cpu,
        index: 0,
    };
    pub const GPU: Device = Device {
        kind: DeviceType::Gpu,
        index: 0,
    };
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            DeviceType::Cpu => write!(f, "Device(cpu, {})", self.index),
            DeviceType::Gpu => write!(f, "Device(gpu, {})", self.index),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Stream {
    pub index: usize,
    pub device: Device,
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stream({}, {})", self.device, self.index)
    }
}

struct Streams {
    default_device: Device,
    /// default stream per device kind
    cpu_default: Stream,
    gpu_default: Stream,
}

static NEXT_STREAM: AtomicUsize = AtomicUsize::new(2);

fn streams() -> &'static Mutex<Streams> {
    static S: OnceLock<Mutex<Streams>> = OnceLock::new();
    S.get_or_init(|| {
        let default_device = if crate::backend::is_available(Device::GPU) {
            Device::GPU
        } else {
            Device::CPU
        };
        Mutex::new(Streams {
            default_device,
            cpu_default: Stream {
                index: 0,
                device: Device::CPU,
            },
            gpu_default: Stream {
                index: 1,
                device: Device::GPU,
            },
        })
    })
}

fn lock() -> std::sync::MutexGuard<'static, Streams> {
    match streams().lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

pub fn default_device() -> Device {
    lock().default_device
}

pub fn set_default_device(d: Device) -> Result<()> {
    if !crate::backend::is_available(d) {
        return Err(Error::value(
            "set_default_device",
            format!("{d} is not available."),
        ));
    }
    lock().default_device = d;
    Ok(())
}

pub fn default_stream(d: Device) -> Stream {
    if let Some(top) = SCOPED.with(|s| s.borrow().last().copied()) {
        if top.device == d {
            return top;
        }
    }
    let s = lock();
    match d.kind {
        DeviceType::Cpu => s.cpu_default,
        DeviceType::Gpu => s.gpu_default,
    }
}

pub fn set_default_stream(st: Stream) -> Result<()> {
    if !crate::backend::is_available(st.device) {
        return Err(Error::value(
            "set_default_stream",
            format!("{} is not available.", st.device),
        ));
    }
    let mut s = lock();
    match st.device.kind {
        DeviceType::Cpu => s.cpu_default = st,
        DeviceType::Gpu => s.gpu_default = st,
    }
    s.default_device = st.device;
    Ok(())
}

pub fn new_stream(d: Device) -> Result<Stream> {
    if !crate::backend::is_available(d) {
        return Err(Error::value("new_stream", format!("{d} is not available.")));
    }
    Ok(Stream {
        index: NEXT_STREAM.fetch_add(1, Ordering::Relaxed),
        device: d,
    })
}

thread_local! {
    static SCOPED: RefCell<Vec<Stream>> = const { RefCell::new(Vec::new()) };
}

/// The stream new operations are recorded on in this thread.
pub fn current_stream() -> Stream {
    let scoped = SCOPED.with(|s| s.borrow().last().copied());
    match scoped {
        Some(s) => s,
        None => default_stream(default_device()),
    }
}

/// Run `f` with `s` as the current stream of this thread.
pub fn with_stream<R>(s: Stream, f: impl FnOnce() -> R) -> R {
    SCOPED.with(|v| v.borrow_mut().push(s));
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            SCOPED.with(|v| {
                v.borrow_mut().pop();
            });
        }
    }
    let _pop = Pop;
    f()
}

pub fn push_stream(s: Stream) {
    SCOPED.with(|v| v.borrow_mut().push(s));
}

pub fn pop_stream() {
    SCOPED.with(|v| {
        v.borrow_mut().pop();
    });
}
