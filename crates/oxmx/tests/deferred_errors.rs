//! Errors a backend finds after the fact (the CUDA gathers' error words, read once per
//! evaluation) through a stand-in "GPU" backend that runs the CPU's kernels but, like the
//! GPU, returns an output for a bad index and reports the error only in `finish`.
//! Its own test binary: the stand-in replaces the GPU backend for the whole process.

use oxmx::backend::{self, Backend, Input};
use oxmx::device::{with_stream, Device, DeviceType};
use oxmx::primitive::Primitive;
use oxmx::{ops, ArrayData, Dtype, Error, Result};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

thread_local! {
    static QUEUED: Cell<u64> = const { Cell::new(0) };
}

/// The CPU backend, with index errors deferred to `finish` (per thread).
struct Deferring {
    pending: Mutex<HashMap<ThreadId, Vec<Error>>>,
}

impl Backend for Deferring {
    fn device_type(&self) -> DeviceType {
        DeviceType::Gpu
    }

    fn name(&self) -> String {
        "deferring stand-in".into()
    }

    fn run(
        &self,
        prim: &Primitive,
        inputs: Vec<Input>,
        out_shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        match oxmx_cpu::CpuBackend.run(prim, inputs, out_shape, out_dtype) {
            Err(e @ Error::Index { .. }) => {
                if let Ok(mut p) = self.pending.lock() {
                    p.entry(std::thread::current().id()).or_default().push(e);
                }
                QUEUED.with(|q| q.set(q.get() + 1));
                // what a launch leaves: an output of some values
                let n = out_shape.iter().product::<usize>() * out_dtype.size();
                let buf = oxmx::memory::pool().alloc("stand-in", n)?;
                Ok(ArrayData::contiguous(buf, out_shape))
            }
            r => r,
        }
    }

    fn finish(&self) -> Result<()> {
        let mine = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&std::thread::current().id()));
        match mine.and_then(|v| v.into_iter().next()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn checks_queued(&self) -> u64 {
        QUEUED.with(|q| q.get())
    }
}

fn gpu() -> oxmx::device::Stream {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        oxmx::init();
        backend::register(Arc::new(Deferring {
            pending: Mutex::new(HashMap::new()),
        }));
    });
    oxmx::device::default_stream(Device::GPU)
}

fn f32s(v: &[f32]) -> oxmx::Array {
    ops::from_slice(v, vec![v.len()], Dtype::Float32).unwrap()
}

fn idx(v: &[i64]) -> oxmx::Array {
    ops::from_slice(v, vec![v.len()], Dtype::Int64).unwrap()
}

#[test]
fn a_deferred_error_fails_what_was_computed_from_it_and_nothing_else() {
    let s = gpu();
    with_stream(s, || {
        let x = f32s(&[1.0, 2.0, 3.0]);
        let x2 = ops::multiply(&x, &x).unwrap(); // computed in the failing evaluation
        let bad = ops::take(&x2, &idx(&[0, 5]), Some(0)).unwrap();
        let down = ops::sum(&ops::multiply(&bad, &bad).unwrap(), None, false).unwrap();
        let other = ops::add(&x2, &x).unwrap();
        let r = oxmx::eval::eval(&[down.clone(), other.clone()]);
        assert!(matches!(r, Err(Error::Index { .. })), "{r:?}");
        // computed from the bad gather: the same error again, never its data
        assert!(matches!(bad.data(), Err(Error::Index { .. })));
        assert!(matches!(down.data(), Err(Error::Index { .. })));
        let later = ops::multiply(&down, &down).unwrap();
        assert!(matches!(
            oxmx::eval::eval(std::slice::from_ref(&later)),
            Err(Error::Index { .. })
        ));
        // the same evaluation's other arrays keep their values
        assert_eq!(oxmx::to_vec::<f32>(&x2).unwrap(), vec![1.0, 4.0, 9.0]);
        assert_eq!(oxmx::to_vec::<f32>(&other).unwrap(), vec![2.0, 6.0, 12.0]);
        // and the next evaluation starts clean
        let good = ops::take(&x2, &idx(&[2, 0]), Some(0)).unwrap();
        assert_eq!(oxmx::to_vec::<f32>(&good).unwrap(), vec![9.0, 1.0]);
    });
}

#[test]
fn deferred_errors_stay_with_the_thread_that_queued_them() {
    let s = gpu();
    let run = move |bad: bool| {
        with_stream(s, || {
            let x = f32s(&[1.0, 2.0, 3.0, 4.0]);
            let i = idx(if bad { &[1, 9] } else { &[1, 2] });
            let mut y = ops::take(&x, &i, Some(0)).unwrap();
            for _ in 0..50 {
                y = ops::negative(&y).unwrap();
            }
            oxmx::eval::eval(std::slice::from_ref(&y)).map(|_| ())
        })
    };
    let handles: Vec<_> = [true, false, true, false]
        .into_iter()
        .map(|bad| (bad, std::thread::spawn(move || run(bad))))
        .collect();
    for (bad, h) in handles {
        let r = h.join().unwrap();
        if bad {
            assert!(matches!(r, Err(Error::Index { .. })), "{r:?}");
        } else {
            assert!(r.is_ok(), "{r:?}");
        }
    }
}

#[test]
fn the_first_deferred_error_is_the_one_raised() {
    let s = gpu();
    with_stream(s, || {
        let x = f32s(&[1.0, 2.0]);
        let bad = ops::take(&x, &idx(&[7]), Some(0)).unwrap();
        // a second bad gather, computed from the first, queues its error after it
        let second = ops::take(&bad, &idx(&[3]), Some(0)).unwrap();
        match oxmx::eval::eval(std::slice::from_ref(&second)) {
            Err(Error::Index { msg, .. }) => assert!(msg.contains('7'), "{msg}"),
            r => panic!("{r:?}"),
        }
    });
}
