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


COMPLEX_ORDER = ["greater", "greater_equal", "less", "less_equal", "__gt__", "__ge__", "__lt__", "__le__",
                 "floor_divide", "__floordiv__", "__rfloordiv__", "cummax", "cummin", ".cummax", ".cummin",
                 "maximum", "minimum", "clip", "divmod", "remainder", "__mod__", "__rmod__", "sort", "argsort"]
FLOAT_TO_INT = r"values differ \((u?int\d+|bool), exact\)|dtype MLX float32, oxmx u?int"

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
    Known("mlx-segfaults", "mlx-bug", "Safety: MLX crashes the process on some inputs that oxmx handles: integer "
          "x // 0, x % 0 and INT_MIN // -1 (SIGFPE), and the vjp of cummax/cummin with a NaN in the input "
          "(segmentation fault). oxmx returns defined values (NumPy's for the integer cases; the gradient "
          "flows to the element the running max/min came from). The harness keeps these inputs away from MLX.",
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
          names=["take"], pattern=r"Cannot squeeze axis 0 with size 0"),
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
          pred=lambda n, m: any(t in m.split(" [result]")[0] for t in ("inf", "nan", "-", ".5", ".25", "0.", "e+"))),
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
    # ------------------------------------------------------------------ open (to fix)
    Known("complex-order", "open", "MLX orders complex numbers lexicographically in comparisons, "
          "floor_divide, cummax/cummin; oxmx still refuses complex ordering.",
          names=COMPLEX_ORDER, pattern=r"complex|Not supported for complex"),
    Known("complex-arctan2", "open", "arctan2 on complex64: MLX raises ValueError when the op is built; oxmx "
          "fails at evaluation with RuntimeError.", names=["arctan2", "atan2"], pattern=r"arctan2\] Not supported"),
    Known("bitwise-error-type", "open", "Bitwise ops on floats: MLX raises ValueError when an input is a float "
          "and RuntimeError when only the promoted type is; oxmx raises one type for both.",
          pattern=r"exception types differ: MLX raised (Value|Runtime)Error: .*(Floating point types not allowed|Only allowed on integer)"),
    Known("index-bool", "open", "operator.index() of a 0-d bool array: MLX raises TypeError, oxmx returns an int.",
          names=["__index__"], pattern=r"Only 0-dimensional integer arrays"),
    Known("scalar-overflow", "open", "Python ints out of the dtype's range: MLX wraps in some entry points "
          "(array(), at[] updates) and raises 'Converting ... would result in overflow' in others (full, "
          "binary ops); oxmx does not yet follow the same split everywhere.",
          pattern=r"would result in overflow"),
    Known("put-along-empty", "open", "put_along_axis with empty indices and broadcastable values: MLX returns "
          "the input; oxmx raises a broadcast error.", names=["put_along_axis"], pattern=r"broadcast"),
    Known("bool-cumprod", "open", "cumprod/cumulative_prod of bool arrays keep bool in MLX; oxmx returns "
          "int32.", names=["cumprod", ".cumprod", "cumulative_prod"], pattern=r"dtype MLX bool, oxmx int32"),
    Known("numpy-int-scalar-weak", "open", "MLX treats NumPy integer scalars (np.int32(3)) as weak Python ints "
          "(np.int32(3) * int8 array -> int8); oxmx treats them as int32 arrays.",
          names=["scalar_promotion"], pattern=r"np\.(u?int\d+|bool_).*dtype MLX"),
    Known("complex-nan-sign", "open", "The sign of a NaN imaginary part in complex results/printing differs "
          "(MLX prints 'inf+-nanj').", pattern=r"repr differs.*nan"),
    Known("huge-int-literal", "open", "Python ints beyond 64 bits: MLX raises RuntimeError('std::bad_cast'); "
          "oxmx raises OverflowError in array() but converts silently in full().",
          pattern=r"bad_cast"),
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
