"""mx.fast.cuda_kernel / precompiled_cuda_kernel: user CUDA kernels (run on the GPU
machine by scripts/gpu_test.sh; here only the no-GPU and argument errors run)."""

import numpy as np
import pytest

import oxmx.core as mx

GPU = mx.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU")

EXP = """
    auto elem = cooperative_groups::this_grid().thread_rank();
    if (elem < inp_shape[0] * inp_shape[1]) out[elem] = (T)expf((float)inp[elem]);
"""

# out[i] = v for i < 32 threads (hand-written PTX: no compiler needed to make it)
FILL_PTX = b"""
.version 8.0
.target sm_90
.address_size 64
.visible .entry fill(.param .u64 out, .param .f32 v)
{
  .reg .b64 %rd<5>;
  .reg .b32 %r<2>;
  .reg .f32 %f<2>;
  ld.param.u64 %rd1, [out];
  ld.param.f32 %f1, [v];
  cvta.to.global.u64 %rd2, %rd1;
  mov.u32 %r1, %tid.x;
  mul.wide.u32 %rd3, %r1, 4;
  add.s64 %rd4, %rd2, %rd3;
  st.global.f32 [%rd4], %f1;
  ret;
}
"""


def exp_kernel():
    return mx.fast.cuda_kernel("myexp", ["inp"], ["out"], EXP)


@pytest.mark.skipif(GPU, reason="checks the error on a machine without a GPU")
def test_no_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"\[cuda_kernel\] needs a CUDA GPU"):
        exp_kernel()(inputs=[mx.ones((2, 2))], template=[("T", mx.float32)], grid=(4, 1, 1),
                     threadgroup=(4, 1, 1), output_shapes=[(2, 2)], output_dtypes=[mx.float32])
    with pytest.raises(RuntimeError, match=r"\[precompiled_cuda_kernel\] needs a CUDA GPU"):
        mx.fast.precompiled_cuda_kernel(name="fill", compiled_source=FILL_PTX, inputs=[], output_shapes=[(32,)],
                                        output_dtypes=[mx.float32], scalars=[1.5], grid=(32, 1, 1), threadgroup=(32, 1, 1))


def test_metal_kernel_is_not_available():
    with pytest.raises(RuntimeError, match=r"\[metal_kernel\]"):
        mx.fast.metal_kernel("k", ["a"], ["b"], "")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(grid=(0, 1, 1)), "grid"),
        (dict(threadgroup=(1, 1)), "threadgroup"),
        (dict(output_shapes=[(2, 2), (3,)]), "one output shape and dtype"),
        (dict(inputs=[mx.ones(2), mx.ones(2)]), "Expected 1 inputs"),
    ],
)
def test_argument_errors(kwargs, match):
    args = dict(inputs=[mx.ones((2, 2))], template=[("T", mx.float32)], grid=(4, 1, 1), threadgroup=(4, 1, 1),
                output_shapes=[(2, 2)], output_dtypes=[mx.float32])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        exp_kernel()(**args)


def test_bad_names():
    with pytest.raises(ValueError, match="C identifier"):
        mx.fast.cuda_kernel("my kernel", ["a"], ["b"], "")
    with pytest.raises(ValueError, match="distinct"):
        mx.fast.cuda_kernel("k", ["a"], ["a"], "")


@needs_gpu
@pytest.mark.parametrize("dt", [mx.float32, mx.float16, mx.bfloat16])
def test_exp_matches_mx_exp(dt):
    a = mx.random.normal((16, 16)).astype(dt)
    (b,) = exp_kernel()(inputs=[a], template=[("T", dt)], grid=(a.size, 1, 1), threadgroup=(64, 1, 1),
                        output_shapes=[a.shape], output_dtypes=[dt])
    assert b.dtype == dt and b.shape == a.shape
    tol = 1e-6 if dt == mx.float32 else 1e-2
    np.testing.assert_allclose(np.array(b.astype(mx.float32)), np.array(mx.exp(a).astype(mx.float32)), rtol=tol, atol=tol)


@needs_gpu
def test_several_outputs_scalars_strides_and_init_value():
    src = """
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) {
            long long r = i / x_shape[1], c = i % x_shape[1];
            float v = x[r * x_strides[0] + c * x_strides[1]];
            twice[i] = v * k;
            if (i == 0) info[0] = x_ndim;
        }
    """
    kern = mx.fast.cuda_kernel("multi", ["x", "k", "n"], ["twice", "info"], src, ensure_row_contiguous=False)
    x = mx.arange(12, dtype=mx.float32).reshape(3, 4).T  # a transposed (non-contiguous) view
    twice, info = kern(inputs=[x, 2.5, 12], grid=(12, 1, 1), threadgroup=(32, 1, 1),
                       output_shapes=[(12,), (3,)], output_dtypes=[mx.float32, mx.int32], init_value=7)
    np.testing.assert_allclose(np.array(twice), np.array(x).reshape(-1) * 2.5)
    assert np.array(info).tolist() == [2, 7, 7]  # untouched elements keep init_value


@needs_gpu
def test_template_int_and_empty_output():
    kern = mx.fast.cuda_kernel("fillc", [], ["o"], "int i = threadIdx.x; if (i < N) o[i] = (T)C;")
    (o,) = kern(inputs=[], template=[("T", mx.int32), ("N", 5), ("C", 9)], grid=(8, 1, 1), threadgroup=(8, 1, 1),
                output_shapes=[(5,)], output_dtypes=[mx.int32])
    assert np.array(o).tolist() == [9] * 5
    (e,) = kern(inputs=[], template=[("T", mx.int32), ("N", 0), ("C", 9)], grid=(1, 1, 1), threadgroup=(1, 1, 1),
                output_shapes=[(0,)], output_dtypes=[mx.int32])
    assert e.shape == (0,)


@needs_gpu
def test_compile_error_carries_the_nvrtc_log():
    kern = mx.fast.cuda_kernel("broken", ["a"], ["b"], "b[0] = a[0] +;")
    with pytest.raises(ValueError, match=r"(?s)failed to compile.*error"):
        mx.eval(kern(inputs=[mx.ones(1)], grid=(1, 1, 1), threadgroup=(1, 1, 1), output_shapes=[(1,)],
                     output_dtypes=[mx.float32])[0])


@needs_gpu
def test_precompiled_ptx():
    (o,) = mx.fast.precompiled_cuda_kernel(name="fill", compiled_source=FILL_PTX, inputs=[], output_shapes=[(32,)],
                                           output_dtypes=[mx.float32], scalars=[1.5], grid=(32, 1, 1),
                                           threadgroup=(32, 1, 1))
    assert np.array(o).tolist() == [1.5] * 32
    with pytest.raises(ValueError, match="no kernel 'nope'"):
        mx.eval(mx.fast.precompiled_cuda_kernel(name="nope", compiled_source=FILL_PTX, inputs=[], output_shapes=[(1,)],
                                                output_dtypes=[mx.float32], scalars=[1.0], grid=(1, 1, 1),
                                                threadgroup=(1, 1, 1))[0])


@needs_gpu
def test_no_gradient_unless_custom_function_gives_one():
    kern = exp_kernel()

    def f(a):
        return kern(inputs=[a], template=[("T", mx.float32)], grid=(a.size, 1, 1), threadgroup=(32, 1, 1),
                    output_shapes=[a.shape], output_dtypes=[a.dtype])[0]

    a = mx.random.normal((4, 4))
    with pytest.raises(Exception, match="cuda_kernel"):
        mx.grad(lambda a: f(a).sum())(a)
    cf = mx.custom_function(f)
    cf.vjp(lambda primals, cot, out: cot * out)
    g = mx.grad(lambda a: cf(a).sum())(a)
    np.testing.assert_allclose(np.array(g), np.exp(np.array(a)), rtol=1e-5)
