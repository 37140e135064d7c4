"""Differences from MLX that the harness knows about, each with its reason.

Three kinds (docs/MLX_DIFFERENCES.md has the same table for users):

* ``mlx-bug``: MLX's outcome is a bug (garbage error text, C++ undefined behaviour,
  silent truncation, a dtype that depends on the rank); oxmx gives the defined result.
* ``extends``: MLX refuses with an error and oxmx computes a well-defined result.
* ``open``: an oxmx difference that is not fixed yet (issue #10 stays open while this
  list is not empty). A match here does not hide the example: it is counted and printed.

A difference that matches none of these fails the test.
"""

import re


class Known:
    def __init__(self, key, kind, reason, names=None, pattern=None, pred=None):
        self.key = key
        self.kind = kind
        self.reason = reason
        self.names = set(names) if names else None
        self.pattern = re.compile(pattern, re.S) if pattern else None
        self.pred = pred

    def matches(self, name, message):
        if self.names is not None and name not in self.names:
            return False
        if self.pattern is not None and not self.pattern.search(message):
            return False
        if self.pred is not None and not self.pred(name, message):
            return False
        return True


def _zero_d_only(name, msg):
    # every array argument of the call is 0-d: ``A(True, bool_)`` has no brackets
    return "A([" not in msg.split(" [result]")[0]


def _nan_factorization(name, msg):
    # a NaN input of an iterative factorization (svd, eigh) or of a norm computed with one
    call = msg.split(" [result]")[0]
    iterative = name in ("linalg.svd", "linalg.eigh", "linalg.eigvalsh") or any(
        o in call for o in ("ord=2", "ord=-2", "ord='nuc'"))
    return iterative and "nan" in call


LINALG = [
    "linalg.inv", "linalg.tri_inv", "linalg.cholesky", "linalg.cholesky_inv", "linalg.solve",
    "linalg.solve_triangular", "linalg.qr", "linalg.svd", "linalg.eigh", "linalg.eigvalsh",
    "linalg.eig", "linalg.eigvals", "linalg.lu", "linalg.lu_factor", "linalg.det",
    "linalg.slogdet", "linalg.pinv", "linalg.cross", "linalg.norm", "matrix_norm"
]

FLOAT_TO_INT = r"values differ \((u?int\d+|bool)(, exact)?\)|dtype MLX float32, oxmx u?int"

KNOWN = [
    # ------------------------------------------------------------------ MLX bugs
    Known("argreduce-0d", "mlx-bug", "argmax/argmin of a 0-d array with keepdims=True: MLX raises "
          "'cannot create std::vector larger than max_size()'; oxmx returns 0.",
          pattern=r"std::vector larger than max_size"),
    Known("0d-reduce-dtype", "mlx-bug", "Reductions, scans and softmax of a 0-d array return the input "
          "unchanged in MLX, so sum/prod/cumprod of a bool scalar stay bool and softmax of an int stays int; "
          "oxmx applies the same dtype rule at every rank (sum of bool -> int32, softmax -> float).",
          pattern=r"dtype MLX (bool|u?int\d+), oxmx", pred=_zero_d_only),
    Known("index-bounds", "mlx-bug", "Safety: gather/scatter indices outside their axis (take, "
          "take_along_axis, put_along_axis, at[] updates, integer-array indexing) are not checked by MLX, "
          "which reads or writes out of bounds (wrong values, heap corruption, later aborts). oxmx raises "
          "IndexError before any kernel runs, on CPU and GPU. The harness never sends such calls to MLX and "
          "asserts oxmx's IndexError (diffkit.check).", names=["(out-of-bounds indices)"]),
    Known("cumprod-grad-inf", "mlx-bug", "The gradient of cumprod along a row that holds an infinity: MLX "
          "returns NaN for many entries whose derivative is a number (the vjp of cumprod([1, inf, 2]) at x1 is "
          "1 + x2 = 3 and of cumprod([0, inf]) at x1 is x0 = 0; MLX gives NaN for both, and for about a third "
          "of such entries in random rows of 0, inf and finite values). oxmx gives the exact sum of products "
          "wherever it is defined, and NaN where a product has 0 * inf (tests/test_scan_grads.py).",
          names=["cumprod", ".cumprod", "cumulative_prod"], pattern=r"\[vjp\]"),
    Known("conv-transpose-output-padding-vjp", "mlx-bug", "The gradient of conv_transpose1d/2d/3d with "
          "output_padding: MLX returns an input gradient of the wrong shape (e.g. (2, 1, 1, 1) for a (2, 3, 3, 1) "
          "input) or raises a broadcast error; oxmx's is checked against finite differences (tests/test_conv.py).",
          names=["vjp:conv_transpose1d", "vjp:conv_transpose2d", "vjp:conv_transpose3d"],
          pattern=r"output_padding=\(?[1-9].*\[vjp\]"),
    Known("conv-grouped-vmap", "mlx-bug", "vmap of a grouped convolution (groups > 1): MLX's values differ from "
          "calling the function once per batch item (e.g. by 64 for a float16 conv1d with groups=2); oxmx's equal "
          "the per-item loop (tests/test_conv.py).", names=["vmap:" + n for n in ["conv1d", "conv2d", "conv3d", "conv_general", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]],
          pattern=r"groups=[2-9].*\[vmap\]: .*values differ"),
    Known("conv-negative-padding-vjp", "mlx-bug", "The gradient of conv_general with negative padding and input "
          "dilation: MLX raises a broadcast error ('Cannot broadcast array of shape ...' or '[broadcast_shapes] ...'); oxmx's is checked against finite differences.",
          names=["vjp:conv_general"], pattern=r"padding=\(\[-.*([Cc]annot broadcast|cannot be broadcast)"),
    Known("complex-power-vjp", "mlx-bug", "The vjp of power with a complex base: MLX multiplies the cotangent by "
          "the derivative itself, while every other op (square, multiply, exp, ...) uses its conjugate, so the "
          "gradient of z ** 2 differs from that of square(z) and from finite differences. oxmx uses the conjugate "
          "everywhere (tests/test_complex_grads.py). The harness differentiates real arguments only.",
          names=["(complex power vjp)"]),
    Known("mlx-segfaults", "mlx-bug", "Safety: MLX crashes the process on some inputs that oxmx handles: integer "
          "x // 0, x % 0 and INT_MIN // -1 (SIGFPE), and the vjp of cummax/cummin with a NaN in the input "
          "(segmentation fault). oxmx returns defined values (NumPy's for the integer cases; a defined "
          "gradient for cummax/cummin). The harness keeps these inputs away from MLX.",
          names=["(process crashes)"]),
    Known("clear-streams", "mlx-bug", "After clear_streams() every later op on the thread's default stream "
          "raises RuntimeError in MLX ('There is no Stream(cpu, 0) in current thread'); oxmx recreates the "
          "default stream (test_diff_state.py::test_clear_streams_in_a_fresh_process).",
          names=["clear_streams"]),
    Known("softmax-int-multi-axis", "mlx-bug", "softmax of an integer array over several (or all) axes keeps "
          "the integer dtype in MLX and returns zeros; over one axis MLX promotes to float32 as oxmx always does.",
          names=["softmax"], pattern=r"dtype MLX (u?int\d+|bool), oxmx float"),
    Known("take-neg-scalar", "mlx-bug", "take(x, -1, axis=-1) with a scalar index on a 1-D array raises an "
          "internal squeeze error in MLX; oxmx returns the last element, as NumPy does.",
          names=["take"], pattern=r"Cannot squeeze axis \d+ with size 0"),
    Known("getitem-empty-index", "mlx-bug", "Indexing an empty axis with an integer after a None "
          "(x[None, 0] for x of shape (0,)) raises an internal squeeze error (ValueError) in MLX; oxmx raises "
          "NumPy's IndexError (index 0 out of bounds for an axis of size 0).",
          names=["__getitem__"], pattern=r"Cannot squeeze axis \d+ with size 0.*oxmx raised IndexError"),
    Known("concat-one-axis", "mlx-bug", "concatenate/concat of a single array returns it without checking "
          "the axis in MLX; oxmx raises the same AxisError it raises for several arrays.",
          names=["concatenate", "concat"], pattern=r"MLX returned a result, oxmx raised AxisError"),
    Known("flatten-axis", "mlx-bug", "flatten does not check end_axis/start_axis bounds in MLX; oxmx raises "
          "AxisError (ValueError and IndexError) as for every other axis argument.",
          names=["flatten", ".flatten"], pattern=r"MLX returned a result, oxmx raised AxisError"),
    Known("float-to-int", "mlx-bug", "Converting NaN, +-inf or out-of-range floats (and negative floats to "
          "unsigned types) to an integer dtype is undefined behaviour in C++: MLX returns whatever the "
          "instruction gives. oxmx defines it (saturating; NaN -> 0), identically on CPU and GPU.",
          pattern=FLOAT_TO_INT,
          pred=lambda n, m: n == "at.divide" or any(t in m.split(" [result]")[0] for t in ("inf", "nan", "-", ".5", ".25", "0.", "e+"))),
    Known("empty-transposed-reduce", "mlx-bug", "all/prod (and other identities) over every axis of an empty "
          "non-contiguous (transposed) array: MLX returns False/0 instead of the identity True/1; oxmx returns "
          "the identity, as NumPy does.", names=["all", ".all", "prod", ".prod", "any", ".any", "sum", ".sum", "max", "min"],
          pattern=r"values differ \((bool|u?int\d+|float\d+)(, exact)?\)\n  MLX  (False|0)\n  oxmx (True|1)"),
    Known("f16-scan-nan", "mlx-bug", "cummax/cummin of float16/bfloat16 arrays containing NaN: MLX writes 0 at the "
          "NaN and continues; oxmx propagates the NaN as the float32/float64 scans (and NumPy) do.",
          names=["cummax", "cummin", ".cummax", ".cummin"], pattern=r"values differ \((float16|bfloat16)"),
    Known("logsumexp-bool", "mlx-bug", "logsumexp of a bool array over an axis: MLX's values are wrong (they do not "
          "equal log(sum(exp(x))) of the 0/1 values); oxmx computes log(sum(exp(x))) as for integers.",
          names=["logsumexp", ".logsumexp"], pred=lambda n, m: "bool_" in m.split(" [result]")[0]),
    Known("setitem-empty", "mlx-bug", "Assigning through an integer-array index into an empty array raises "
          "'[scatter] Updates ... are too large' in MLX; oxmx performs the (empty) assignment.",
          names=["__setitem__"], pattern=r"Updates with shape .* are too large"),
    Known("full-array-dtype", "mlx-bug", "full(shape, vals, dtype) ignores dtype in MLX when vals is an array or a "
          "Python float (full(3, 2.0, mx.int32) is float32); oxmx returns the requested dtype, as documented.",
          names=["full"], pattern=r"dtype MLX \w+, oxmx \w+",
          pred=lambda n, m: "A(" in m.split(" [result]")[0] or "." in m.split(" [result]")[0]),
    Known("logsumexp-unsigned", "mlx-bug", "logsumexp of unsigned integer arrays over several axes: MLX subtracts "
          "the maximum in the unsigned type (wrapping) and returns inf; oxmx converts to float first.",
          names=["logsumexp", ".logsumexp"], pattern=r"values differ \(float32\)\n  MLX  .*inf",
          pred=lambda n, m: "uint" in m.split(" [result]")[0]),
    Known("sign-nan", "mlx-bug", "sign(NaN) is 0 in MLX; oxmx returns NaN, as NumPy does (and sign(-0) is 0 in both).",
          names=["sign"], pattern=r"values differ", pred=lambda n, m: "nan" in m.split(" [result]")[0]),
    Known("complex-floor-divide", "mlx-bug", "floor_divide of complex numbers in MLX returns the plain quotient "
          "(nothing is floored); oxmx refuses complex floor_divide with a ValueError, as NumPy does (TypeError).",
          names=["floor_divide", "__floordiv__", "__rfloordiv__", "divmod"], pattern=r"Not supported for complex"),
    Known("huge-int-literal", "mlx-bug", "Python ints outside the int64/uint64 range, or beyond an int32 "
          "dtype in full(): MLX raises RuntimeError('std::bad_cast'), an internal C++ message; oxmx raises "
          "OverflowError or ValueError naming the value.", pattern=r"MLX raised RuntimeError: std::bad_cast"),
    Known("numpy-scalar-truncation", "mlx-bug", "A NumPy float32/float16 scalar combined with a bool or "
          "integer array is truncated to the array's dtype in MLX (mx.array([1]) + np.float32(1.5) == 2); "
          "oxmx promotes it as a float, like a Python float.",
          names=["scalar_promotion"], pattern=r"dtype MLX (bool|u?int\d+), oxmx float"),
    Known("vecdot-broadcast", "mlx-bug", "vecdot of a 2-D and a 1-D array raises 'axis is out of bounds' in "
          "MLX although the inputs broadcast; oxmx broadcasts them as documented.",
          names=["vecdot"], pattern=r"axis is out of bounds"),
    Known("linalg-crashes", "mlx-bug", "Safety: MLX kills the process on some linalg inputs that oxmx handles: "
          "inv, tri_inv, cholesky_inv, solve and solve_triangular of 0x0 matrices and lu/lu_factor of matrices with "
          "no rows or no columns (SIGFPE; oxmx returns the empty results) and eig/eigvals of a matrix holding NaN (LAPACK's illegal-value exit; oxmx returns NaN). The "
          "harness keeps these inputs away from MLX (tests/test_linalg.py checks oxmx's results).",
          names=["(process crashes)"]),
    Known("cholesky-not-pd", "mlx-bug", "cholesky of a symmetric matrix that is not positive definite: MLX returns a "
          "wrong partial factor (cholesky(-I) is -I, whose L @ L.T is not the input); oxmx returns NaN for that "
          "matrix, so the failure cannot go unnoticed.",
          names=["linalg.cholesky"], pattern=r"values differ.*\n  oxmx .*nan"),
    Known("linalg-singular", "mlx-bug", "Exactly singular matrices: MLX's solve and cholesky_inv (and its inv for "
          "some matrices) return arbitrary finite values; oxmx raises RuntimeError ('The matrix is singular'), as "
          "MLX's inv does for others and NumPy does for all.",
          names=LINALG, pattern=r"MLX returned a result, oxmx raised RuntimeError"),
    Known("linalg-nan", "mlx-bug", "A matrix holding NaN in svd, eigh, eigvalsh and the matrix norms 2, -2 and "
          "'nuc': MLX raises RuntimeError ('failed with error code') or returns arbitrary numbers; oxmx returns NaN "
          "for that matrix.",
          names=LINALG, pattern=r"MLX raised RuntimeError: \[(SVD|Eigh)::eval_cpu\]|values differ", pred=_nan_factorization),
    Known("norm-int-overflow", "mlx-bug", "norm of an integer array: MLX squares (or raises to ord) the integers in "
          "their own type, so they wrap (the 2-norm of uint8 [17, 12] is sqrt(33 + 144)); oxmx converts them to "
          "float32, the result's type, first.",
          names=["linalg.norm", "matrix_norm"], pattern=r"values differ",
          pred=lambda n, m: re.search(r", u?int\d+(, view=\w+)?\)", m.split(" [result]")[0]) is not None),
    Known("norm-complex-dtype", "mlx-bug", "norm of a complex64 array with ord other than None, 2 (vectors), 'fro' "
          "and 'nuc': MLX returns a complex64 result; oxmx returns the real float32 norm, as for the other ords "
          "(and as NumPy).",
          names=["linalg.norm", "matrix_norm"], pattern=r"dtype MLX complex64, oxmx float32"),
    Known("norm-duplicate-axes", "mlx-bug", "norm with ord 2, -2 or 'nuc' over the same axis twice (axis=(1, 1)): "
          "MLX returns a value; oxmx raises AxisError (ValueError and IndexError), as MLX does for the other ords.",
          names=["linalg.norm", "matrix_norm"], pattern=r"MLX returned a result, oxmx raised AxisError"),
    Known("slogdet-nan", "mlx-bug", "slogdet of a matrix holding NaN: MLX's sign is 0 (its sign(NaN) is 0); "
          "oxmx's is NaN, as NumPy's.",
          names=["linalg.slogdet"], pattern=r"values differ", pred=lambda n, m: "nan" in m.split(" [result]")[0]),
    Known("hadamard-vjp", "mlx-bug", "The gradient (vjp) of hadamard_transform for n = 20 * 2^k or 28 * 2^k: MLX "
          "multiplies the cotangent by the transform matrix H again instead of by its transpose; MLX's 20 x 20 and "
          "28 x 28 matrices are not symmetric, so its gradient disagrees with finite differences and with its own "
          "jvp. oxmx's is H^T u * scale (tests/test_matmul_variants.py).",
          names=["hadamard_transform"], pattern=r"hadamard_transform\[n=\d+ m=(20|28)\].*\[vjp\]"),
    Known("hadamard-complex", "mlx-bug", "hadamard_transform of a complex64 array: MLX converts it to float32, "
          "silently dropping the imaginary part; oxmx transforms the complex values (a complex64 result).",
          names=["hadamard_transform"], pattern=r"dtype MLX float32, oxmx complex64"),
    Known("hadamard-size1", "mlx-bug", "hadamard_transform over a last axis of size 1 (or of a 0-d array) with "
          "scale 1: MLX returns the input unchanged, so integers and bools keep their dtype, while every other size "
          "gives float32; oxmx gives float32 at every size.",
          names=["hadamard_transform"], pattern=r"dtype MLX (bool|u?int\d+), oxmx float32"),
    Known("segmented-mm-half", "mlx-bug", "segmented_mm of float16/bfloat16 matrices with a segment other than "
          "[0, K): MLX's values are wrong from the second row on (a = [[1, 2], [3, 4]], b = [[1], [1]], segments "
          "[[1, 2]] give [[2], [3]] instead of [[2], [4]]); float32 and float64 are right. oxmx computes "
          "a[:, start:stop] @ b[start:stop] for every dtype.",
          names=["segmented_mm"], pattern=r"values differ \((float16|bfloat16)"),
    Known("segmented-mm-inner", "mlx-bug", "segmented_mm does not check that a's columns match b's rows in MLX "
          "(a segment past b's rows then reads outside b); oxmx raises ValueError, as matmul does.",
          names=["segmented_mm"], pattern=r"MLX returned a result, oxmx raised ValueError"),
    Known("block-masked-mm-broadcast", "mlx-bug", "block_masked_mm with a per-batch mask_lhs/mask_rhs for an operand "
          "that is broadcast along the batch (a 2-D a against a batched b, or a broadcast view): MLX masks the shared "
          "data once for all batches, so a batch sees the blocks zeroed for earlier ones (a = ones((2, 2)), "
          "b = ones((2, 2, 2)), mask_lhs = [[[False]], [[True]]] gives zeros for both batches instead of 2s for the "
          "second); oxmx masks each batch's copy.",
          names=["block_masked_mm"], pattern=r"^block_masked_mm\[[^\]]*batch-broadcast operand[^\]]*\]\(.*values differ"),
    Known("block-masked-mm-mixed-masks", "mlx-bug", "block_masked_mm with a bool mask for one operand and a numeric "
          "mask for the other: MLX turns the bool mask into a scale too, so a NaN or infinity inside a masked-out "
          "block leaks into the result (a = ones((2, 2)), b = [[nan, 1], [1, 1]], mask_lhs = [[1.0]], "
          "mask_rhs = [[False]] gives NaN; with mask_lhs = [[True]] it gives 0). oxmx's bool masks always exclude "
          "their blocks.",
          names=["block_masked_mm"], pattern=r"^block_masked_mm\[[^\]]*mixed operand masks[^\]]*\]\(.*values differ"),
    Known("block-masked-mm-mask-grad", "mlx-bug", "The gradient of block_masked_mm with respect to a float mask_out: "
          "MLX multiplies it by the mask once more (a = ones((1, 1)), b = [[3.0]], mask_out = [[0.5]]: d out / d mask "
          "is 3, MLX gives 1.5, and 0 for a zero mask); its gradients for a, b and the operand masks are right. "
          "oxmx's is the sum of the cotangent times the unmasked product.",
          names=["block_masked_mm"], pattern=r"^block_masked_mm\[[^\]]*float mask_out[^\]]*\]\(.*\[vjp\]: \[\d\]: values differ"),
    Known("gather-mm-vjp", "mlx-bug", "Gradients of gather_mm that MLX cannot take: when a has no batch dimensions "
          "(a 1-D or 2-D a with indices) MLX raises '[flatten] start_axis must be less than or equal to end_axis' or "
          "(with sorted_indices=True and only rhs_indices) returns a gradient of a with an extra leading axis "
          "((1, 2, 1) for a (2, 1) a); with sorted_indices=True and an index array of two or more dimensions it "
          "raises '[scatter_add_axis] Indices of dimension 2 does not match array of dimension 1'; with "
          "sorted_indices=True and only lhs_indices its gradient of b ignores the indices (a = arange(12).reshape(3, "
          "2, 2), b = ones((2, 1)), lhs_indices [2]: MLX [[2], [4]], right [[18], [20]]). oxmx returns the "
          "gradients (checked against finite differences in tests/test_matmul_variants.py).",
          names=["gather_mm"],
          pattern=r"\[vjp\]: (MLX raised ValueError: \[(flatten\] start_axis|scatter_add_axis\] Indices of dimension)|.*shape MLX \(1,)"
                  r"|sorted_indices=True\) \[vjp\]: \[\d\]: values differ"),
    Known("matmul-variant-crashes", "mlx-bug", "Safety: segmented_mm with no rows in a or no columns in b and "
          "gather_mm with indices into an empty batch kill MLX (SIGFPE), so does the gradient of gather_mm with "
          "respect to an empty a or b, and depends([], ...) segfaults; "
          "gather_mm and segmented_mm read outside the arrays for indices or segments out of range (garbage or a "
          "crash). oxmx returns the empty results (and [] for depends) and raises IndexError for out-of-range "
          "indices and segments when the result is evaluated. The harness keeps these inputs away from MLX "
          "(tests/test_matmul_variants.py checks oxmx's results).",
          names=["(process crashes)"]),
    Known("triangular-vmap", "mlx-bug", "vmap of tri_inv, solve_triangular and cholesky_inv: MLX's batched versions "
          "read the whole matrix (tri_inv returns the inverse of the full matrix, upper= is ignored), so they "
          "disagree with MLX's own unbatched results; oxmx's vmap equals the loop over the batch.",
          names=["linalg.tri_inv", "linalg.solve_triangular", "linalg.cholesky_inv"], pattern=r"\[vmap\]"),
    # ------------------------------------------------------------------ oxmx extends
    Known("int-matmul", "extends", "Integer matmul/inner/vecdot/kron/tensordot: MLX accepts only inexact types; "
          "oxmx computes them exactly (wrapping like NumPy).",
          pattern=r"Only inexact types are supported"),
    Known("kron-empty", "extends", "kron with an empty operand: MLX raises, oxmx returns the empty product "
          "(as NumPy).", names=["kron"], pattern=r"Input arrays cannot be empty"),
    Known("nan-to-num-complex", "extends", "nan_to_num on complex64: MLX raises 'does not yet support', oxmx "
          "replaces NaN/inf in both parts (as NumPy).", names=["nan_to_num"], pattern=r"Does not yet support"),
    Known("reflected-bitwise", "extends", "Python int on the left of &, |, ^, <<, >> with an array: MLX has no "
          "reflected bitwise operators (TypeError); oxmx computes them.",
          names=["__rand__", "__ror__", "__rxor__", "__rlshift__", "__rrshift__"],
          pattern=r"unsupported operand type"),
    Known("cumulative-initial", "extends", "cumulative_sum/cumulative_prod accept NumPy's include_initial= "
          "in oxmx; MLX's aliases of cumsum/cumprod reject it (TypeError).",
          names=["cumulative_sum", "cumulative_prod"], pattern=r"incompatible function arguments"),
    Known("jvp-missing-in-mlx", "extends", "Forward mode (jvp) of cumprod/cummax/cummin and of scatters "
          "(diag of a vector, at[] updates): MLX raises 'JVP is not implemented'; oxmx computes the exact jvp "
          "(tests/test_grad_parity.py checks it against finite differences).",
          pattern=r"\[jvp\]: MLX raised RuntimeError: .*JVP (is )?not (yet )?implemented"),
    Known("addmm-jvp", "mlx-bug", "The jvp of addmm in MLX ignores alpha and beta (it disagrees with MLX's own "
          "vjp); oxmx's jvp is the derivative of beta*c + alpha*(a@b).",
          names=["addmm"], pattern=r"\[jvp\]"),
    Known("conv-jvp", "extends", "Forward-mode derivatives (jvp) of the convolutions: MLX raises '[Primitive::jvp] Not "
          "implemented for Convolution'; oxmx computes them (checked against finite differences in "
          "tests/test_conv.py).", names=["jvp:" + n for n in ["conv1d", "conv2d", "conv3d", "conv_general", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]],
          pattern=r"Not implemented for Convolution"),
    Known("conv3d-vmap", "extends", "vmap of a 3-d convolution: MLX batches a convolution by folding the batch into "
          "groups and raises '[conv] Can only handle groups != 1 in 1D or 2D convolutions'; oxmx batches it.",
          names=["vmap:" + n for n in ["conv1d", "conv2d", "conv3d", "conv_general", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]], pattern=r"Can only handle groups != 1"),
    Known("irfft-jvp-odd", "mlx-bug", "Forward mode (jvp) of irfft/irfft2/irfftn (and istft) with an odd output length n: MLX's "
          "tangent has length n - 1 (norm='backward'), or MLX raises (a broadcast error, or a size-0 FFT for n = 1); "
          "oxmx's tangent is irfft of the input tangent, with the output's shape (tests/test_fft.py).",
          names=["jvp:fft.irfft", "jvp:fft.irfft2", "jvp:fft.irfftn", "jvp:fft.istft"],
          pattern=r"\[jvp\].*(\[broadcast_shapes\]|shape MLX|Invalid FFT output size requested \([\d,]*\b0\))"),
    Known("stft-layout", "mlx-bug", "stft of a signal that is not row-contiguous (a strided or broadcast view) "
          "whose framing needs no padding: MLX raises 'AsStrided must be used with row contiguous arrays only'; "
          "oxmx frames any layout.", names=["fft.stft"], pattern=r"AsStrided must be used with row contiguous"),
    Known("stft-vmap", "extends", "vmap of stft: MLX raises '[Primitive::vmap] Not implemented for AsStrided'; "
          "oxmx batches it.", names=["vmap:fft.stft"], pattern=r"Not implemented for AsStrided"),
    Known("linalg-grads", "extends", "Derivatives of the factorizations: MLX has no vjp or jvp for inv, tri_inv, "
          "cholesky, cholesky_inv, solve (with respect to a), solve_triangular, qr, svd, eigh, eigvalsh, pinv and the "
          "matrix norms 2, -2 and 'nuc' ('[Primitive::vjp] Not implemented for ...'), and no vmap for qr, solve, lu "
          "and lu_factor; oxmx computes them (tests/test_linalg.py checks them against PyTorch and finite "
          "differences).",
          names=LINALG, pattern=r"Not implemented for (Inverse|SVD|Cholesky|QRF|Eigh|LUF)|Cannot calculate VJP with respect to indices"),
    Known("linalg-broadcast", "extends", "solve with batch dimensions that broadcast (a (n, n) with b (B, n, k), a "
          "1-D b with a stack of matrices): MLX raises an internal take_along_axis error; oxmx broadcasts them, as "
          "MLX's solve_triangular and NumPy's solve do.",
          names=["linalg.solve"], pattern=r"\[take_along_axis\]"),
    Known("linalg-any-device", "extends", "MLX's linalg functions run only on the CPU stream (stream=mx.cpu); "
          "oxmx's run on the default device of any kind and accept the same stream argument (the factorizations "
          "themselves run on the CPU for now).", names=["(linalg on a GPU stream)"]),
    Known("det-half-precision", "extends", "det and slogdet of float16/bfloat16 matrices larger than 3x3: MLX raises "
          "(its LU takes float32 and float64 only, while it computes smaller ones in closed form); oxmx computes "
          "them in float32 and rounds the result to the input's type at every size.",
          names=["linalg.det", "linalg.slogdet"], pattern=r"\[linalg::lu_factor\] Arrays must have type float32 or float64"),
    Known("matmul-variant-dtypes", "extends", "gather_mm and block_masked_mm (with a mask) on float16, bfloat16 and "
          "float64, and hadamard_transform on float64: MLX's CPU kernels raise ('Currently only supports float32', "
          "'[hadamard] Unsupported type'); oxmx computes them in the input's type.",
          names=["gather_mm", "block_masked_mm", "hadamard_transform"],
          pattern=r"Currently only supports float32|\[hadamard\] Unsupported type"),
    Known("matmul-variant-transforms", "extends", "Forward-mode derivatives (jvp) and vmap of gather_mm and "
          "block_masked_mm (with indices or masks), every derivative and vmap of segmented_mm, and jvp/vmap of "
          "depends: MLX raises 'Not implemented for GatherMM' (BlockMaskedMM, SegmentedMM, Depends); oxmx's "
          "composites differentiate and batch them (tests/test_matmul_variants.py checks them against finite "
          "differences and loops).",
          names=["gather_mm", "block_masked_mm", "segmented_mm", "depends"],
          pattern=r"Not implemented for (GatherMM|BlockMaskedMM|SegmentedMM|Depends)"),
    # ------------------------------------------------------------------ open (to fix)
    Known("complex-expm1", "extends", "expm1 on complex64: MLX raises, oxmx computes exp(z) - 1.",
          names=["expm1"], pattern=r"Not supported"),
]


def classify(name, message):
    for k in KNOWN:
        if k.matches(name, message):
            return k
    return None
