//! Host scalars: conversion of a Python-style value into any dtype's bytes and back.
//! Float→int conversions saturate and NaN becomes 0 (defined, identical everywhere).

use crate::dtype::{Dtype, ScalarKind};
use half::{bf16, f16};
use num_complex::Complex32;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    /// Unsigned values above i64::MAX (uint64 only).
    UInt(u64),
    Float(f64),
    Complex(f64, f64),
}

impl Scalar {
    pub fn kind(&self) -> ScalarKind {
        match self {
            Scalar::Bool(_) => ScalarKind::Bool,
            Scalar::Int(_) | Scalar::UInt(_) => ScalarKind::Int,
            Scalar::Float(_) => ScalarKind::Float,
            Scalar::Complex(..) => ScalarKind::Complex,
        }
    }
    pub fn as_f64(&self) -> f64 {
        match *self {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::UInt(u) => u as f64,
            Scalar::Float(f) => f,
            Scalar::Complex(r, _) => r,
        }
    }
    fn as_i64(&self) -> i64 {
        match *self {
            Scalar::Bool(b) => b as i64,
            Scalar::Int(i) => i,
            Scalar::UInt(u) => u as i64,
            Scalar::Float(f) => f as i64,
            Scalar::Complex(r, _) => r as i64,
        }
    }
    fn as_u64(&self) -> u64 {
        match *self {
            Scalar::Bool(b) => b as u64,
            Scalar::Int(i) => i as u64,
            Scalar::UInt(u) => u,
            Scalar::Float(f) => f as u64,
            Scalar::Complex(r, _) => r as u64,
        }
    }
    fn is_true(&self) -> bool {
        match *self {
            Scalar::Bool(b) => b,
            Scalar::Int(i) => i != 0,
            Scalar::UInt(u) => u != 0,
            Scalar::Float(f) => f != 0.0,
            Scalar::Complex(r, i) => r != 0.0 || i != 0.0,
        }
    }

    /// Little-endian bytes of this value converted to `dtype` (integer conversion of an
    /// integer wraps, like a C cast; of a float saturates).
    pub fn to_bytes(&self, dtype: Dtype) -> Vec<u8> {
        use Dtype::*;
        let int_src = matches!(self, Scalar::Int(_) | Scalar::UInt(_) | Scalar::Bool(_));
        macro_rules! int {
            ($t:ty) => {{
                let v: $t = if int_src {
                    match *self {
                        Scalar::UInt(u) => u as $t,
                        _ => self.as_i64() as $t,
                    }
                } else {
                    self.as_f64() as $t
                };
                v.to_le_bytes().to_vec()
            }};
        }
        match dtype {
            Bool => vec![self.is_true() as u8],
            Uint8 => int!(u8),
            Uint16 => int!(u16),
            Uint32 => int!(u32),
            Uint64 => {
                let v = if int_src {
                    self.as_u64()
                } else {
                    self.as_f64() as u64
                };
                v.to_le_bytes().to_vec()
            }
            Int8 => int!(i8),
            Int16 => int!(i16),
            Int32 => int!(i32),
            Int64 => int!(i64),
            Float16 => f16::from_f64(self.as_f64()).to_le_bytes().to_vec(),
            Bfloat16 => {
                // every NaN is stored as +NaN (0x7FC0), as MLX does
                let v = self.as_f64();
                let b = if v.is_nan() {
                    bf16::from_bits(0x7FC0)
                } else {
                    bf16::from_f64(v)
                };
                b.to_le_bytes().to_vec()
            }
            Float32 => (self.as_f64() as f32).to_le_bytes().to_vec(),
            Float64 => self.as_f64().to_le_bytes().to_vec(),
            Complex64 => {
                let (r, i) = match *self {
                    Scalar::Complex(r, i) => (r, i),
                    _ => (self.as_f64(), 0.0),
                };
                let c = Complex32::new(r as f32, i as f32);
                bytemuck::bytes_of(&c).to_vec()
            }
        }
    }

    /// Read one element of `dtype` from little-endian bytes.
    pub fn from_bytes(dtype: Dtype, b: &[u8]) -> Option<Scalar> {
        use Dtype::*;
        let b = b.get(..dtype.size())?;
        Some(match dtype {
            Bool => Scalar::Bool(b[0] != 0),
            Uint8 => Scalar::Int(b[0] as i64),
            Uint16 => Scalar::Int(u16::from_le_bytes(b.try_into().ok()?) as i64),
            Uint32 => Scalar::Int(u32::from_le_bytes(b.try_into().ok()?) as i64),
            Uint64 => Scalar::UInt(u64::from_le_bytes(b.try_into().ok()?)),
            Int8 => Scalar::Int(b[0] as i8 as i64),
            Int16 => Scalar::Int(i16::from_le_bytes(b.try_into().ok()?) as i64),
            Int32 => Scalar::Int(i32::from_le_bytes(b.try_into().ok()?) as i64),
            Int64 => Scalar::Int(i64::from_le_bytes(b.try_into().ok()?)),
            Float16 => Scalar::Float(f16::from_le_bytes(b.try_into().ok()?).to_f64()),
            Bfloat16 => Scalar::Float(bf16::from_le_bytes(b.try_into().ok()?).to_f64()),
            Float32 => Scalar::Float(f32::from_le_bytes(b.try_into().ok()?) as f64),
            Float64 => Scalar::Float(f64::from_le_bytes(b.try_into().ok()?)),
            Complex64 => {
                let r = f32::from_le_bytes(b[0..4].try_into().ok()?);
                let i = f32::from_le_bytes(b[4..8].try_into().ok()?);
                Scalar::Complex(r as f64, i as f64)
            }
        })
    }
}
