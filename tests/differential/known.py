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
    # ------------------------------------------------------------------ open (to fix)
    Known("complex-expm1", "extends", "expm1 on complex64: MLX raises, oxmx computes exp(z) - 1.",
          names=["expm1"], pattern=r"Not supported"),
    Known("mvn-needs-linalg", "open", "random.multivariate_normal needs linalg.svd (issue #12).",
          names=["random.multivariate_normal"], pattern=r"NotImplementedError"),
]


def classify(name, message):
    for k in KNOWN:
        if k.matches(name, message):
            return k
    return None
