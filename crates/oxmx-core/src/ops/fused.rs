//! Fused elementwise kernels: a group of elementwise nodes of one shape that `compile`
//! runs as one node (`Primitive::Fused`). The program lists the nodes it replaces, in
//! order; the last one is the output. Backends evaluate each step exactly as the
//! unfused node would (same kernels on the CPU, same expressions and roundings on the
//! GPU), so fused results equal eager results bit for bit; only the memory traffic
//! between the steps is gone.

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::{Primitive, UnaryOp};
use std::sync::Arc;

/// Most steps one fused node holds (longer chains are split into several nodes).
pub const MAX_STEPS: usize = 64;
/// Most distinct inputs of one fused node (a GPU kernel takes each as a parameter).
pub const MAX_INPUTS: usize = 16;

/// Where a step's operand comes from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FusedArg {
    /// The node's input `i` (already broadcast to the output's shape).
    Input(usize),
    /// The value of an earlier step.
    Step(usize),
}

/// One replaced node: an elementwise primitive, its operands and its dtype.
#[derive(Clone, PartialEq, Debug)]
pub struct FusedStep {
    pub prim: Primitive,
    pub args: Vec<FusedArg>,
    pub dtype: Dtype,
}

/// The steps of a fused node over inputs of the given dtypes; the last step's value is
/// the output.
#[derive(Clone, PartialEq, Debug)]
pub struct FusedProgram {
    pub inputs: Vec<Dtype>,
    pub steps: Vec<FusedStep>,
}

/// A shared program, compared by content.
#[derive(Clone, Debug)]
pub struct FusedKernel(pub Arc<FusedProgram>);

impl PartialEq for FusedKernel {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0) || *self.0 == *o.0
    }
}

/// Whether a node may join a fused group: an elementwise primitive on real (not
/// complex) dtypes. `erfinv` stays out: its GPU node falls back to the CPU for MLX's
/// bits, which a fused kernel could not do.
pub fn is_fusable(prim: &Primitive, dtype: Dtype, input_dtypes: &[Dtype]) -> bool {
    let elementwise = match prim {
        Primitive::Unary(op) => *op != UnaryOp::ErfInv,
        Primitive::Binary(_) | Primitive::Select | Primitive::AsType(_) => true,
        _ => false,
    };
    elementwise && !dtype.is_complex() && input_dtypes.iter().all(|d| !d.is_complex())
}

impl FusedProgram {
    /// Checks what backends rely on: every operand names an input or an earlier step,
    /// every step is fusable with the dtypes it reads, and the inputs match `dtypes`.
    pub fn validate(&self, dtypes: &[Dtype], out_dtype: Dtype) -> Result<()> {
        let bad = |why: &str| Err(Error::runtime("fused", why.to_string()));
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return bad("A fused node needs 1 to 64 steps.");
        }
        if self.inputs.as_slice() != dtypes || self.inputs.len() > MAX_INPUTS {
            return bad("The inputs do not match the fused program.");
        }
        for (k, s) in self.steps.iter().enumerate() {
            let mut arg_dtypes = Vec::with_capacity(s.args.len());
            for a in &s.args {
                arg_dtypes.push(match *a {
                    FusedArg::Input(i) if i < dtypes.len() => dtypes[i],
                    FusedArg::Step(j) if j < k => self.steps[j].dtype,
                    _ => return bad("A fused step reads a value that does not precede it."),
                });
            }
            let arity = match s.prim {
                Primitive::Unary(_) | Primitive::AsType(_) => 1,
                Primitive::Binary(_) => 2,
                _ => 3,
            };
            if arg_dtypes.len() != arity || !is_fusable(&s.prim, s.dtype, &arg_dtypes) {
                return bad("A fused step is not an elementwise node.");
            }
        }
        if self.steps.last().map(|s| s.dtype) != Some(out_dtype) {
            return bad("The fused output's dtype does not match the program.");
        }
        Ok(())
    }

    /// `validate` for a backend's evaluated inputs, which must also all have the output's
    /// shape (a fused node's inputs are broadcast before it).
    pub fn check_inputs(
        &self,
        ins: &[crate::backend::Input],
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<()> {
        let dtypes: Vec<Dtype> = ins.iter().map(|x| x.dtype).collect();
        self.validate(&dtypes, out_dtype)?;
        if ins.iter().any(|x| x.shape.as_slice() != shape) {
            return Err(Error::runtime(
                "fused",
                "An input does not have the output's shape.",
            ));
        }
        Ok(())
    }

    /// The steps in a line, as `OXMX_COMPILE_DEBUG` prints them: `sin(x0) -> exp -> ...`.
    pub fn describe(&self) -> String {
        let name = |a: &FusedArg| match a {
            FusedArg::Input(i) => format!("x{i}"),
            FusedArg::Step(j) => format!("s{j}"),
        };
        self.steps
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let args: Vec<String> = s.args.iter().map(name).collect();
                let op = match &s.prim {
                    Primitive::AsType(d) => format!("astype[{d}]"),
                    Primitive::Unary(u) => format!("{u:?}").to_lowercase(),
                    p => p.name().to_string(),
                };
                format!("s{k} = {op}({})", args.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The replaced nodes rebuilt over `inputs` (one array per step, the output last):
    /// what transforms differentiate and batch instead of the fused node.
    pub fn expand(&self, inputs: &[Array], shape: &[usize]) -> Result<Vec<Array>> {
        let mut vals: Vec<Array> = Vec::with_capacity(self.steps.len());
        for s in &self.steps {
            let args = self.operands(s, inputs, &vals)?;
            vals.push(Array::pending(
                shape.to_vec(),
                s.dtype,
                s.prim.clone(),
                args,
            ));
        }
        Ok(vals)
    }

    /// The arrays a step reads, given the inputs and the values of earlier steps.
    pub fn operands(&self, s: &FusedStep, inputs: &[Array], vals: &[Array]) -> Result<Vec<Array>> {
        s.args
            .iter()
            .map(|a| match *a {
                FusedArg::Input(i) => inputs.get(i).cloned(),
                FusedArg::Step(j) => vals.get(j).cloned(),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::runtime("fused", "A fused step reads a missing value."))
    }
}
