//! Fused elementwise nodes (`Primitive::Fused`) on the GPU: one NVRTC kernel per
//! program (cached in memory and on disk like every generated kernel). Each step is the
//! unfused kernel's expression (`kernels::unary_expr`/`binary_expr`) in its own compute
//! type, and its value is rounded to the step's dtype exactly as storing it would. Fused
//! and eager elementwise kernels are compiled with `--fmad=false`, so a multiply of one
//! step and an add of the next are never contracted into an FMA (an empty `asm` is not
//! enough: ptxas contracts `mul.f32`/`add.f32` across it). Results are the unfused
//! kernels' bits.

use crate::ffi::{self, FusedMeta, MAX_DIMS};
use crate::kernels::{self, binary_expr, compute_type, ctype, unary_expr};
use crate::strided_walk::{locate_unrolled, rows4_mask};
use crate::vector_walk::{vector4_loop, vectors_per_thread};
use crate::{on_device, unsupported, CudaBackend};
use cudarc::driver::CudaFunction;
use oxmx_core::backend::Input;
use oxmx_core::ops::fused::{FusedArg, FusedProgram, MAX_INPUTS};
use oxmx_core::primitive::Primitive;
use oxmx_core::shape::{collapse_dims, contiguous_strides, size_of};
use oxmx_core::{ArrayData, Dtype, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const OP: &str = "fused";

/// How the kernel finds each input's element.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Walk {
    /// `ndim` (up to `MAX_DIMS`) collapsed dimensions, any strides, unrolled
    /// (`strided_walk::locate_unrolled`); `narrow`: at most `u32::MAX` elements.
    Strided { ndim: usize, narrow: bool },
    /// Four outputs per thread along rows (`strided_walk::rows4_mask`): inputs whose bit
    /// is set in `unit` are read with one vector load, the others once per four outputs.
    Rows4 { ndim: usize, narrow: bool, unit: u8 },
    /// One collapsed dimension: element i of input k is `offset[k] + i * stride[k]`.
    Linear,
    /// `Linear` by vectors of four outputs, `per_thread` vectors per thread
    /// (`vector_walk`); inputs of stride 1 (offsets divisible by 4) are read with one
    /// aligned vector load each.
    Vector4 { per_thread: u8 },
}

/// How a `Linear`/`Vector4` kernel reads an input: the stride of its one dimension is
/// baked into the source when it is 1 or 0 (a scalar, loaded once per thread).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Stride {
    Unit,
    Scalar,
    Any,
    /// One value held on the host: passed to the kernel by value, never uploaded or
    /// loaded (any walk).
    ByValue,
}

/// Compiled fused kernels by program, walk and operand kinds. A compiled function replays
/// the same programs (one `Arc` each), so the key is the program's address, and the
/// entry holds the `Arc` so that the address cannot name another program while it is
/// here. Finding a kernel then neither generates nor hashes its source: that was most
/// of the 44 µs of host time per fused launch in the GPT-2 step.
#[derive(Default)]
pub(crate) struct FusedFunctions(Mutex<HashMap<FnKey, (Arc<FusedProgram>, CudaFunction)>>);

type FnKey = (usize, Walk, Vec<Stride>);

/// Entries kept at most (distinct programs × layouts); past it the map starts over.
const MAX_FUSED_FUNCTIONS: usize = 4096;

impl FusedFunctions {
    fn get(&self, p: &Arc<FusedProgram>, walk: Walk, kinds: &[Stride]) -> Option<CudaFunction> {
        let key = (Arc::as_ptr(p) as usize, walk, kinds.to_vec());
        let map = self.0.lock().ok()?;
        map.get(&key)
            .filter(|(held, _)| Arc::ptr_eq(held, p))
            .map(|(_, f)| f.clone())
    }

    fn insert(&self, p: &Arc<FusedProgram>, walk: Walk, kinds: &[Stride], f: CudaFunction) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= MAX_FUSED_FUNCTIONS {
                map.clear();
            }
            let key = (Arc::as_ptr(p) as usize, walk, kinds.to_vec());
            map.insert(key, (Arc::clone(p), f));
        }
    }
}

/// The C source of a step's function `s{k}::f` and how its operands are loaded.
struct StepCode {
    /// The namespace holding `CT` and `f`.
    def: String,
    /// The local type each operand is loaded as.
    operand_types: Vec<&'static str>,
}

fn step_code(k: usize, prim: &Primitive, arg_dtypes: &[Dtype]) -> Option<StepCode> {
    let d0 = *arg_dtypes.first()?;
    let (ct, expr, arity) = match prim {
        Primitive::Unary(u) => (compute_type(d0)?, unary_expr(*u, d0)?, 1),
        Primitive::Binary(b) => (compute_type(d0)?, binary_expr(*b, d0)?, 2),
        Primitive::Select => (
            compute_type(*arg_dtypes.get(1)?)?,
            "x ? y : z".to_string(),
            3,
        ),
        Primitive::AsType(_) => (compute_type(d0)?, "x".to_string(), 1),
        _ => return None,
    };
    let names = ["x", "y", "z"];
    let mut params = Vec::with_capacity(arity);
    let mut operand_types = Vec::with_capacity(arity);
    for (i, nm) in names.iter().take(arity).enumerate() {
        let t: &'static str = if arity == 3 && i == 0 { "bool" } else { ct };
        params.push(format!("{t} {nm}"));
        operand_types.push(t);
    }
    let def = format!(
        "namespace s{k} {{ typedef {ct} CT; __device__ __forceinline__ auto f({}) {{ return ({expr}); }} }}\n",
        params.join(", ")
    );
    Some(StepCode { def, operand_types })
}

/// `v` (of C storage type for `d`) read back as a value of local type `lt`, as a kernel
/// reading it from memory would.
fn load_as(v: &str, d: Dtype, lt: &str) -> String {
    let inner = match d {
        Dtype::Bool => format!("({v} != 0)"),
        Dtype::Float16 | Dtype::Bfloat16 => format!("ld({v})"),
        _ => v.to_string(),
    };
    format!("(({lt})({inner}))")
}

/// The value `r` stored as dtype `d` (the unfused kernels' store).
fn store_as(r: &str, d: Dtype) -> Option<String> {
    Some(match d {
        Dtype::Bool => format!("(unsigned char)(({r}) ? 1 : 0)"),
        Dtype::Float16 => format!("st_half((float)({r}))"),
        Dtype::Bfloat16 => format!("st_bf16((float)({r}))"),
        _ => format!("({})({r})", ctype(d)?),
    })
}

/// The kernel source of `p` for the given walk.
fn fused_src(p: &FusedProgram, walk: Walk, kinds: &[Stride]) -> Option<String> {
    let mut defs = String::new();
    let mut body = String::new();
    let last = p.steps.len().checked_sub(1)?;
    // A bfloat16 step before the last is held as the float its stored value loads as
    // (`rt_bf16`: the same bits as storing and loading it, in fewer instructions).
    let held_as_float =
        |j: usize| j < last && p.steps.get(j).map(|t| t.dtype) == Some(Dtype::Bfloat16);
    for (k, s) in p.steps.iter().enumerate() {
        let arg_dtypes: Vec<Dtype> = s
            .args
            .iter()
            .map(|a| match *a {
                FusedArg::Input(i) => p.inputs.get(i).copied(),
                FusedArg::Step(j) => p.steps.get(j).map(|t| t.dtype),
            })
            .collect::<Option<_>>()?;
        let code = step_code(k, &s.prim, &arg_dtypes)?;
        defs.push_str(&code.def);
        let operands: Vec<String> = s
            .args
            .iter()
            .zip(&arg_dtypes)
            .zip(&code.operand_types)
            .map(|((a, d), lt)| match *a {
                FusedArg::Input(i) => load_as(&format!("a{i}"), *d, lt),
                FusedArg::Step(j) if held_as_float(j) => format!("(({lt})(v{j}))"),
                FusedArg::Step(j) => load_as(&format!("v{j}"), *d, lt),
            })
            .collect();
        let value = format!("s{k}::f({})", operands.join(", "));
        if held_as_float(k) {
            body.push_str(&format!("    float v{k} = rt_bf16((float)({value}));\n"));
        } else {
            let st = ctype(s.dtype)?;
            body.push_str(&format!(
                "    {st} v{k} = {};\n",
                store_as(&value, s.dtype)?
            ));
        }
    }
    let ot = ctype(p.steps.get(last)?.dtype)?;
    let mut params = String::new();
    let kind = |i: usize| kinds.get(i).copied().unwrap_or(Stride::Any);
    for (i, d) in p.inputs.iter().enumerate() {
        if kind(i) == Stride::ByValue {
            params.push_str(&format!("unsigned long long in{i}, "));
        } else {
            params.push_str(&format!("const {}* __restrict__ in{i}, ", ctype(*d)?));
        }
    }
    // the inputs read from memory (by index) in a strided walk
    let indexed: Vec<usize> = (0..p.inputs.len())
        .filter(|&i| kind(i) != Stride::ByValue)
        .collect();
    let loads = |elem: &dyn Fn(usize) -> String| -> Option<String> {
        let mut s = String::new();
        for (i, d) in p.inputs.iter().enumerate() {
            s.push_str(&format!("    {} a{i} = {};\n", ctype(*d)?, elem(i)));
        }
        Some(s)
    };
    let grid = "long long stride = (long long)gridDim.x * blockDim.x; long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;";
    // element `at` of input i in a one-dimensional walk
    let linear_elem = |i: usize, at: &str| match kind(i) {
        Stride::Unit => format!("in{i}[m.offset[{i}] + {at}]"),
        Stride::Scalar | Stride::ByValue => format!("h{i}"),
        Stride::Any => format!("in{i}[m.offset[{i}] + {at} * m.strides[{i}][0]]"),
    };
    let mut hoisted = String::new();
    for (i, d) in p.inputs.iter().enumerate() {
        let t = ctype(*d)?;
        if kind(i) == Stride::ByValue {
            hoisted.push_str(&format!(
                "  const {t} h{i} = *reinterpret_cast<const {t}*>(&in{i});\n"
            ));
        } else if matches!(walk, Walk::Linear | Walk::Vector4 { .. }) && kind(i) == Stride::Scalar {
            hoisted.push_str(&format!("  const {t} h{i} = in{i}[m.offset[{i}]];\n"));
        }
    }
    // element of input i at the strided walk's index `j{i}`
    let indexed_elem = |i: usize| {
        if kind(i) == Stride::ByValue {
            format!("h{i}")
        } else {
            format!("in{i}[j{i}]")
        }
    };
    let kernel_body = match walk {
        Walk::Strided { ndim, narrow } => {
            let at = locate_unrolled(ndim, &indexed, narrow);
            let l = loads(&indexed_elem)?;
            format!("{hoisted}  for (long long i = tid; i < m.n; i += stride) {{\n{at}{l}{body}    out[i] = v{last};\n  }}\n")
        }
        Walk::Rows4 { ndim, narrow, unit } => {
            let at = locate_unrolled(ndim, &indexed, narrow);
            let is_unit = |i: usize| unit & (1 << i) != 0;
            let mut row_loads = String::new();
            for (i, d) in p.inputs.iter().enumerate() {
                let t = ctype(*d)?;
                row_loads.push_str(&if is_unit(i) {
                    format!("    V4<{t}> q{i} = *reinterpret_cast<const V4<{t}>*>(in{i} + j{i});\n")
                } else {
                    format!("    const {t} q{i} = {};\n", indexed_elem(i))
                });
            }
            let lv = loads(&|i| {
                if is_unit(i) {
                    format!("q{i}.v[e]")
                } else {
                    format!("q{i}")
                }
            })?;
            format!(
                "{hoisted}  for (long long i = tid * 4; i < m.n; i += stride * 4) {{\n{at}{row_loads}    V4<{ot}> o;\n    #pragma unroll\n    for (int e = 0; e < 4; ++e) {{\n{lv}{body}    o.v[e] = v{last};\n    }}\n    *reinterpret_cast<V4<{ot}>*>(out + i) = o;\n  }}\n"
            )
        }
        Walk::Linear => {
            let l = loads(&|i| linear_elem(i, "i"))?;
            format!("{hoisted}  for (long long i = tid; i < m.n; i += stride) {{\n{l}{body}    out[i] = v{last};\n  }}\n")
        }
        Walk::Vector4 { per_thread } => {
            let mut vectors = Vec::new();
            for (i, d) in p.inputs.iter().enumerate() {
                if kind(i) == Stride::Unit {
                    let base = format!("in{i} + m.offset[{i}]");
                    vectors.push((format!("q{i}"), ctype(*d)?.to_string(), base));
                }
            }
            let lv = loads(&|i| {
                if kind(i) == Stride::Unit {
                    format!("q{i}.v[e]")
                } else {
                    linear_elem(i, "(ox_v * 4 + e)")
                }
            })?;
            let ls = loads(&|i| linear_elem(i, "i"))?;
            let compute = format!("{lv}{body}    o.v[e] = v{last};\n");
            let tail = format!("{ls}{body}    out[i] = v{last};\n");
            format!(
                "{hoisted}{}",
                vector4_loop(&vectors, ot, &compute, &tail, per_thread)
            )
        }
    };
    let mut dtypes = p.inputs.clone();
    dtypes.extend(p.steps.iter().map(|s| s.dtype));
    let pre = kernels::prelude_for(&dtypes);
    Some(format!(
        "{pre}\ntemplate <typename T> struct alignas(4 * sizeof(T)) V4 {{ T v[4]; }};\nstruct FusedMeta {{ long long ndim; long long n; long long shape[{MAX_DIMS}]; long long strides[{MAX_INPUTS}][{MAX_DIMS}]; long long offset[{MAX_INPUTS}]; }};\n{defs}extern \"C\" __global__ void k({params}{ot}* __restrict__ out, FusedMeta m) {{\n  {grid}\n{kernel_body}}}\n"
    ))
}

/// The kernel's name in a profiler: its walk and steps (`fused_rows4_2d_multiply_add`).
fn entry_name(p: &FusedProgram, walk: Walk) -> String {
    let mut name = match walk {
        Walk::Strided { ndim, .. } => format!("{OP}_strided_{ndim}d"),
        Walk::Rows4 { ndim, .. } => format!("{OP}_rows4_{ndim}d"),
        Walk::Linear => format!("{OP}_linear"),
        Walk::Vector4 { per_thread } => format!("{OP}_vec4x{per_thread}"),
    };
    for s in &p.steps {
        name.push('_');
        name.push_str(s.prim.name());
    }
    name
}

impl CudaBackend {
    /// A fused node: one launch over the output.
    pub(crate) fn fused(
        &self,
        p: &Arc<FusedProgram>,
        ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        p.check_inputs(&ins, shape, out_dtype)?;
        let (mut out, nbytes) = self.new_output(OP, shape, out_dtype)?;
        let n = size_of(shape);
        if n > 0 {
            let out_strides = contiguous_strides(shape);
            let mut all: Vec<&[isize]> = vec![&out_strides];
            all.extend(ins.iter().map(|x| x.data.strides.as_slice()));
            let (cshape, cstrides) = collapse_dims(shape, &all);
            if cshape.len() > MAX_DIMS || ins.len() > MAX_INPUTS {
                return Err(unsupported(
                    OP,
                    "An operand with more than 8 non-contiguous dimensions",
                ));
            }
            let mut m = FusedMeta {
                ndim: cshape.len() as i64,
                n: n as i64,
                ..Default::default()
            };
            crate::fill_layout(
                &cshape,
                &cstrides,
                &ins,
                &mut m.shape,
                &mut m.strides,
                &mut m.offset,
            );
            let linear = cshape.len() <= 1;
            let values: Vec<Option<u64>> = ins.iter().map(crate::host_scalar).collect();
            let kinds: Vec<Stride> = (0..ins.len())
                .map(|k| match m.strides[k][0] {
                    _ if values.get(k).is_some_and(Option::is_some) => Stride::ByValue,
                    _ if !linear => Stride::Any,
                    1 => Stride::Unit,
                    0 => Stride::Scalar,
                    _ => Stride::Any,
                })
                .collect();
            let aligned = ins
                .iter()
                .zip(&kinds)
                .all(|(x, &k)| k != Stride::Unit || x.data.offset % 4 == 0);
            let walk = if !linear {
                let (ndim, narrow) = (cshape.len(), u32::try_from(n).is_ok());
                let operands: Vec<Option<(&[isize], i64)>> = ins
                    .iter()
                    .zip(cstrides.iter().skip(1))
                    .zip(&kinds)
                    .map(|((x, st), &k)| {
                        (k != Stride::ByValue).then_some((st.as_slice(), x.data.offset as i64))
                    })
                    .collect();
                match rows4_mask(&cshape, &operands) {
                    Some(unit) => Walk::Rows4 { ndim, narrow, unit },
                    None => Walk::Strided { ndim, narrow },
                }
            } else if aligned && n >= 4 && kinds.contains(&Stride::Unit) {
                let unit_sizes = p
                    .inputs
                    .iter()
                    .zip(&kinds)
                    .filter(|(_, &k)| k == Stride::Unit)
                    .map(|(d, _)| d.size());
                Walk::Vector4 {
                    per_thread: vectors_per_thread(unit_sizes),
                }
            } else {
                Walk::Linear
            };
            let f = match self.fused_fns.get(p, walk, &kinds) {
                Some(f) => f,
                None => {
                    let src = fused_src(p, walk, &kinds)
                        .ok_or_else(|| unsupported(OP, "A step of this fused program"))?;
                    let f = self.compiler.get_exact(&entry_name(p, walk), src)?;
                    self.fused_fns.insert(p, walk, &kinds, f.clone());
                    f
                }
            };
            // a host scalar is passed by value: no upload, no load per thread
            let slices = ins
                .iter()
                .zip(&values)
                .map(|(x, v)| match v {
                    Some(_) => Ok(None),
                    None => self.device_of(OP, x).map(Some),
                })
                .collect::<Result<Vec<_>>>()?;
            let threads = match walk {
                Walk::Vector4 { per_thread } => crate::vector_walk::threads(n, per_thread),
                Walk::Rows4 { .. } => n.div_ceil(4),
                _ => n,
            };
            let dst = out.slice_mut()?;
            ffi::launch(OP, &self.alloc.stream, &f, self.grid(threads), |b| {
                for (s, v) in slices.iter().zip(&values) {
                    match (s, v) {
                        (Some(s), _) => ffi::arg(b, *s),
                        (None, Some(v)) => ffi::arg(b, v),
                        (None, None) => {}
                    }
                }
                ffi::arg(b, &*dst);
                ffi::arg(b, &m);
            })?;
        }
        Ok(on_device(out, nbytes, shape))
    }
}
