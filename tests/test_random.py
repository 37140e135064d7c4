"""mx.random: known answers from real MLX, distributions, shapes, dtypes and errors.

The expected bits below were produced by MLX 0.32.4 (``mlx[cpu]``, Linux x86-64),
probed as a black box through ``mlx.core.random``: for the same key oxmx must return
the same bits.
"""

import math

import numpy as np
import pytest

import oxmx.core as mx

U32 = np.uint32

# mx.erfinv at the points of test_erfinv_matches_mlx_bits, as float32 bits, from MLX 0.32.4.
ERFINV_BITS = [3222595988, 3203674366, 3127398835, 0, 896394508, 1046919221, 1060871501, 1068013665, 1078452891]


def key42():
    return mx.random.key(42)


def bits_of(a):
    """The raw bits of an array as a list of ints (floats by their bit patterns)."""
    if a.dtype == mx.bfloat16:
        return np.array(a.view(mx.uint16)).ravel().tolist()
    x = np.array(a)
    if x.dtype == np.float32:
        return x.view(np.uint32).ravel().tolist()
    if x.dtype == np.float16:
        return x.view(np.uint16).ravel().tolist()
    return x.ravel().tolist()


# ------------------------------------------------------------------ known answers
class TestKnownAnswers:
    def test_key(self):
        assert mx.random.key(0).tolist() == [0, 0]
        assert mx.random.key(1).tolist() == [0, 1]
        assert mx.random.key(2**32 + 5).tolist() == [1, 5]
        assert mx.random.key(12345678901234).tolist() == [2874, 1942892530]
        assert mx.random.key(2**64 - 1).tolist() == [2**32 - 1, 2**32 - 1]
        k = mx.random.key(3)
        assert k.dtype == mx.uint32 and k.shape == (2,)

    def test_split(self):
        assert mx.random.split(mx.random.key(0)).tolist() == [
            [4146024105, 967050713],
            [2718843009, 1272950319],
        ]
        s = mx.random.split(key42(), 3)
        assert s.shape == (3, 2) and s.dtype == mx.uint32
        assert s.tolist() == [[3134548294, 3733159049], [3746501087, 894150801], [801545058, 2363201431]]
        assert mx.random.split(key42(), num=0).shape == (0, 2)
        # unpacking works as in MLX
        a, b = mx.random.split(mx.random.key(0))
        assert b.tolist() == [2718843009, 1272950319]

    def test_uniform(self):
        k = key42()
        assert bits_of(mx.random.uniform(shape=(7,), key=k)) == [
            1060115375, 1058635266, 1049086087, 1053320941, 1061375710, 1049745307, 1025863553,
        ]
        assert bits_of(mx.random.uniform(-2.5, 3.7, shape=(2, 3), key=k)) == [
            1073846166, 1077470568, 1077551348, 3214592169, 3215713566, 1063866744,
        ]
        k2 = mx.array([0xDEADBEEF, 0x12345678], dtype=mx.uint32)
        assert bits_of(mx.random.uniform(shape=(5,), key=k2)) == [
            1062479233, 1058871120, 1059973044, 1059958222, 1053928835,
        ]
        assert bits_of(mx.random.uniform(shape=(5,), key=k, dtype=mx.float16)) == [14807, 15092, 12873, 12969, 12793]
        assert bits_of(mx.random.uniform(shape=(5,), key=k, dtype=mx.bfloat16)) == [16187, 16223, 15945, 15957, 15935]
        lo = mx.array([0.0, 10.0, 20.0])
        hi = mx.array([[1.0], [2.0]])
        assert bits_of(mx.random.uniform(lo, hi, shape=(2, 3), key=k)) == [
            1060820329, 1074485286, 1079724136, 1054158498, 1091050674, 1092716789,
        ]
        # positional arguments, as in MLX
        assert bits_of(mx.random.uniform(0, 1, (7,), None, k)) == bits_of(mx.random.uniform(shape=(7,), key=k))

    def test_uniform_keeps_below_high(self):
        # key (0, 9) draws the word 0xfffffffe at index 784285 of 2**20
        k = mx.array([0, 9], dtype=mx.uint32)
        i = 784285
        assert bits_of(mx.random.uniform(shape=(1 << 20,), key=k)[i]) == [1065353215]
        assert mx.random.uniform(-2, 3, shape=(1 << 20,), key=k)[i].item() == np.float32(2.9999995)
        assert mx.random.uniform(shape=(1 << 20,), key=k, dtype=mx.float16)[i].item() == 0.99951171875
        assert mx.random.uniform(shape=(1 << 20,), key=k, dtype=mx.bfloat16)[i].item() == 0.99609375

    def test_normal_bits(self):
        # Bit-exact: normal is sqrt(2) * erfinv(uniform) with MLX's single-precision erfinv.
        want = [1056616483, 1048651751, 3206585506, 3196920158, 1060584024, 3205597479, 3219096301]
        assert bits_of(mx.random.normal(shape=(7,), key=key42())) == want
        want = [1069939552, 1066861802, 1066277404]
        assert bits_of(mx.random.normal(shape=(3,), key=key42(), loc=1.5, scale=0.25)) == want
        assert bits_of(mx.random.normal(shape=(5,), key=key42(), dtype=mx.float16)) == [14566, 15486, 47829, 47744, 47903]

    def test_erfinv_matches_mlx_bits(self):
        x = mx.array([-0.999, -0.5, -1e-3, 0.0, 1e-6, 0.25, 0.7, 0.9375, 0.99999])
        assert bits_of(mx.erfinv(x)) == ERFINV_BITS

    def test_discrete(self):
        k = key42()
        assert mx.random.randint(-3, 17, shape=(9,), key=k).tolist() == [9, 3, 0, 14, 11, 0, 3, 2, 9]
        k2 = mx.array([0xDEADBEEF, 0x12345678], dtype=mx.uint32)
        r = mx.random.randint(0, 256, shape=(6,), dtype=mx.uint8, key=k2)
        assert r.dtype == mx.uint8 and r.tolist() == [212, 157, 20, 173, 104, 210]
        b = mx.random.bernoulli(0.3, shape=(9,), key=k)
        assert b.dtype == mx.bool_
        assert b.tolist() == [False, False, True, False, False, True, False, True, False]
        p = mx.random.permutation(10, key=k)
        assert p.dtype == mx.uint32 and p.tolist() == [5, 2, 7, 1, 6, 8, 0, 9, 4, 3]
        x = mx.arange(12).reshape(3, 4)
        assert mx.random.permutation(x, axis=1, key=k).tolist() == [[2, 3, 0, 1], [6, 7, 4, 5], [10, 11, 8, 9]]

    def test_gumbel_laplace(self):
        k = key42()
        assert bits_of(mx.random.gumbel(shape=(4,), key=k)) == [1058458010, 1072617805, 3213152265, 3213009798]
        assert bits_of(mx.random.laplace(shape=(4,), key=k)) == [3190053935, 3214927575, 1074284080, 1074084725]
        assert bits_of(mx.random.laplace(shape=(4,), key=k, loc=0.5, scale=2.0)) == [
            1043810210, 3221212590, 1083721264, 1083521909,
        ]

    def test_categorical(self):
        k = key42()
        logits = mx.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
        c = mx.random.categorical(logits, num_samples=4, key=k)
        assert c.dtype == mx.uint32 and c.tolist() == [[2, 2, 0, 2], [0, 0, 0, 0]]
        l3 = mx.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
        assert mx.random.categorical(l3, key=k).tolist() == [2, 0, 2]
        assert mx.random.categorical(logits, axis=0, shape=(2, 3), key=k).tolist() == [[1, 0, 0], [1, 0, 0]]

    def test_global_sequence(self):
        mx.random.seed(7)
        a = mx.random.uniform(shape=(3,))
        b = mx.random.uniform(shape=(3,))
        assert bits_of(a) == [1033845045, 1043506214, 1062545487]
        assert bits_of(b) == [1058385924, 1054844428, 1060428737]
        assert mx.random.state[0].tolist() == [3874823782, 2507669382]
        mx.random.seed(123)
        assert mx.random.randint(0, 100, shape=(5,)).tolist() == [2, 19, 54, 65, 84]
        assert mx.random.state[0].tolist() == [1896456402, 17229315]
        # a draw without a key uses the second half of split(state) and keeps the first
        mx.random.seed(0)
        x = mx.random.uniform(shape=(4,))
        k0, k1 = mx.random.split(mx.random.key(0))
        assert bits_of(x) == bits_of(mx.random.uniform(shape=(4,), key=k1))
        assert mx.random.state[0].tolist() == k0.tolist()
        # explicit keys do not advance the state
        mx.random.uniform(shape=(2,), key=k0)
        mx.random.split(k0)
        assert mx.random.state[0].tolist() == k0.tolist()

    def test_state_object(self):
        mx.random.seed(5)
        st = mx.random.state
        assert len(st) == 1
        assert st[0].tolist() == mx.random.key(5).tolist()
        assert st[-1].tolist() == mx.random.key(5).tolist()
        assert [k.tolist() for k in st] == [[0, 5]]
        with pytest.raises(IndexError):
            st[1]


# ------------------------------------------------------------------ determinism
class TestDeterminism:
    def test_same_key_same_values(self):
        k = mx.random.key(9)
        for f in (
            lambda: mx.random.uniform(shape=(5, 3), key=k),
            lambda: mx.random.normal(shape=(7,), key=k),
            lambda: mx.random.randint(0, 10, shape=(4,), key=k),
            lambda: mx.random.gumbel(shape=(3,), key=k),
        ):
            assert bits_of(f()) == bits_of(f())

    def test_seed_reproduces(self):
        mx.random.seed(11)
        a = [bits_of(mx.random.normal(shape=(3,))) for _ in range(3)]
        mx.random.seed(11)
        b = [bits_of(mx.random.normal(shape=(3,))) for _ in range(3)]
        assert a == b
        assert a[0] != a[1]

    def test_subkey_view_is_a_key(self):
        s = mx.random.split(mx.random.key(1), 3)
        assert bits_of(mx.random.uniform(shape=(4,), key=s[2])) == bits_of(
            mx.random.uniform(shape=(4,), key=mx.array(s[2].tolist(), dtype=mx.uint32))
        )


# ------------------------------------------------------------------ shapes and dtypes
SHAPES = [(), (0,), (1,), (5,), (2, 3), (3, 0, 2), (2, 1, 3)]


class TestShapesDtypes:
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
    def test_float_samplers(self, shape, dtype):
        d = getattr(mx, dtype)
        k = mx.random.key(1)
        for x in (
            mx.random.uniform(shape=shape, dtype=d, key=k),
            mx.random.normal(shape=shape, dtype=d, key=k),
            mx.random.gumbel(shape=shape, dtype=d, key=k),
            mx.random.laplace(shape=shape, dtype=d, key=k),
            mx.random.truncated_normal(-1, 1, shape=shape, dtype=d, key=k),
        ):
            assert x.shape == shape and x.dtype == d

    @pytest.mark.parametrize("dtype", ["bool_", "uint8", "int16", "int32", "int64", "uint32"])
    def test_randint_dtypes(self, dtype):
        d = getattr(mx, dtype)
        r = mx.random.randint(0, 2, shape=(6,), dtype=d, key=mx.random.key(0))
        assert r.dtype == d and r.shape == (6,)

    def test_float64_and_complex(self):
        k = mx.random.key(2)
        assert mx.random.normal(shape=(3,), dtype=mx.float64, key=k, stream=mx.cpu).dtype == mx.float64
        assert mx.random.laplace(shape=(3,), dtype=mx.float64, key=k, stream=mx.cpu).dtype == mx.float64
        c = mx.random.normal(shape=(4,), dtype=mx.complex64, key=k)
        assert c.dtype == mx.complex64 and c.shape == (4,)
        # complex parts are the standard float32 samples scaled by 1/sqrt(2)
        z = np.array(c)
        f = np.array(mx.random.normal(shape=(4, 2), key=k)) / np.float32(math.sqrt(2))
        np.testing.assert_allclose(z.real, f[:, 0], rtol=1e-6)
        np.testing.assert_allclose(z.imag, f[:, 1], rtol=1e-6)

    def test_default_shapes(self):
        k = mx.random.key(0)
        assert mx.random.uniform(key=k).shape == ()
        assert mx.random.bernoulli(mx.array([0.1, 0.9]), key=k).shape == (2,)
        assert mx.random.truncated_normal(mx.zeros((2, 1)), mx.ones((3,)), key=k).shape == (2, 3)
        assert mx.random.normal(key=k, loc=mx.zeros((4,))).shape == (4,)
        assert mx.random.normal(shape=(2, 1), key=k, scale=mx.ones((3,))).shape == (2, 3)
        assert mx.random.categorical(mx.zeros((3, 4, 5)), axis=1, key=k).shape == (3, 5)
        assert mx.random.categorical(mx.zeros((3, 4, 5)), axis=1, shape=(2, 3, 5), key=k).shape == (2, 3, 5)
        assert mx.random.categorical(mx.zeros((3, 4)), num_samples=6, key=k).shape == (3, 6)
        assert mx.random.permutation(0, key=k).shape == (0,)

    def test_permutation_is_a_permutation(self):
        p = np.array(mx.random.permutation(1000, key=mx.random.key(4)))
        assert sorted(p.tolist()) == list(range(1000))
        x = mx.arange(20).reshape(4, 5)
        y = np.array(mx.random.permutation(x, key=mx.random.key(4)))
        assert sorted(y[:, 0].tolist()) == [0, 5, 10, 15]
        assert all((row - row[0] == np.arange(5)).all() for row in y)


# ------------------------------------------------------------------ distributions
N = 200_000


def mean_var(x):
    x = np.asarray(x, dtype=np.float64)
    return x.mean(), x.var()


class TestDistributions:
    def test_uniform(self):
        x = np.array(mx.random.uniform(-1, 3, shape=(N,), key=mx.random.key(21)))
        assert x.min() >= -1 and x.max() < 3
        m, v = mean_var(x)
        assert abs(m - 1) < 0.02 and abs(v - 16 / 12) < 0.02
        counts = np.histogram(x, bins=8, range=(-1, 3))[0]
        assert np.all(np.abs(counts / N - 1 / 8) < 0.005)

    @pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
    def test_uniform_low_precision(self, dtype):
        x = np.array(mx.random.uniform(shape=(N,), dtype=getattr(mx, dtype), key=mx.random.key(1)).astype(mx.float32))
        assert x.min() >= 0 and x.max() < 1
        assert abs(x.mean() - 0.5) < 0.01

    def test_normal(self):
        x = np.array(mx.random.normal(shape=(N,), loc=2.0, scale=3.0, key=mx.random.key(22)))
        m, v = mean_var(x)
        assert abs(m - 2) < 0.03 and abs(v - 9) < 0.15
        z = (x - 2) / 3
        assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005

    def test_truncated_normal(self):
        x = np.array(mx.random.truncated_normal(-0.5, 1.0, shape=(N,), key=mx.random.key(23)))
        assert x.min() >= -0.5 and x.max() <= 1.0
        # mean of N(0, 1) truncated to (a, b)
        a, b = -0.5, 1.0
        phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
        cdf = lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))  # noqa: E731
        want = (phi(a) - phi(b)) / (cdf(b) - cdf(a))
        assert abs(x.mean() - want) < 0.01

    def test_gumbel(self):
        x = np.array(mx.random.gumbel(shape=(N,), key=mx.random.key(24)))
        m, v = mean_var(x)
        assert abs(m - 0.5772156649) < 0.02 and abs(v - math.pi**2 / 6) < 0.05

    def test_laplace(self):
        x = np.array(mx.random.laplace(shape=(N,), loc=1.0, scale=2.0, key=mx.random.key(25)))
        m, v = mean_var(x)
        assert abs(m - 1) < 0.03 and abs(v - 8) < 0.2

    def test_bernoulli(self):
        x = np.array(mx.random.bernoulli(0.25, shape=(N,), key=mx.random.key(26)))
        assert abs(x.mean() - 0.25) < 0.005
        p = mx.array([0.0, 1.0, 0.5])
        y = np.array(mx.random.bernoulli(p, shape=(N // 10, 3), key=mx.random.key(27)))
        assert y[:, 0].sum() == 0 and y[:, 1].all() and abs(y[:, 2].mean() - 0.5) < 0.02

    def test_randint(self):
        x = np.array(mx.random.randint(-2, 3, shape=(N,), key=mx.random.key(28)))
        assert x.min() == -2 and x.max() == 2
        assert np.all(np.abs(np.bincount(x + 2) / N - 0.2) < 0.005)

    def test_categorical(self):
        p = np.array([0.1, 0.2, 0.3, 0.4])
        c = np.array(mx.random.categorical(mx.array(np.log(p).astype(np.float32)), num_samples=N, key=mx.random.key(29)))
        assert np.all(np.abs(np.bincount(c, minlength=4) / N - p) < 0.005)


# ------------------------------------------------------------------ errors
class TestErrors:
    def test_bad_keys(self):
        with pytest.raises(ValueError):
            mx.random.uniform(key=mx.array([0, 1, 2], dtype=mx.uint32))
        with pytest.raises(ValueError):
            mx.random.uniform(key=mx.array([0, 1], dtype=mx.int32))
        with pytest.raises(ValueError):
            mx.random.split(mx.array([[0, 1], [2, 3]], dtype=mx.uint32))
        with pytest.raises(ValueError):
            mx.random.split(mx.random.key(0), -1)
        with pytest.raises((TypeError, OverflowError)):
            mx.random.key(-1)

    def test_bad_dtypes(self):
        k = mx.random.key(0)
        with pytest.raises(ValueError):
            mx.random.uniform(shape=(2,), dtype=mx.int32, key=k)
        with pytest.raises(RuntimeError):
            mx.random.uniform(shape=(2,), dtype=mx.float64, key=k)
        with pytest.raises(ValueError):
            mx.random.normal(shape=(2,), dtype=mx.int32, key=k)
        with pytest.raises(ValueError):
            mx.random.randint(0, 5, dtype=mx.float32, key=k)
        with pytest.raises(ValueError):
            mx.random.bernoulli(mx.array([0, 1]), key=k)
        with pytest.raises(ValueError):
            mx.random.truncated_normal(-1, 1, dtype=mx.int32, key=k)
        with pytest.raises(ValueError):
            mx.random.gumbel(dtype=mx.int32, key=k)
        with pytest.raises(ValueError):
            mx.random.laplace(dtype=mx.complex64, key=k)

    def test_bad_shapes(self):
        k = mx.random.key(0)
        with pytest.raises(ValueError):
            mx.random.uniform(shape=(-1,), key=k)
        with pytest.raises(ValueError):
            mx.random.uniform(mx.zeros((3,)), 1, shape=(2,), key=k)
        with pytest.raises(ValueError):
            mx.random.uniform(mx.zeros((3,)), 1, key=k)
        with pytest.raises(ValueError):
            mx.random.bernoulli(mx.array([0.1, 0.9]), shape=(1,), key=k)
        with pytest.raises(ValueError):
            mx.random.categorical(mx.zeros((2, 3)), shape=(2,), num_samples=2, key=k)
        with pytest.raises(ValueError):
            mx.random.categorical(mx.zeros((2, 3)), shape=(2, 1), key=k)
        with pytest.raises(IndexError):
            mx.random.categorical(mx.zeros((2, 3)), axis=2, key=k)
        with pytest.raises((ValueError, IndexError)):
            mx.random.permutation(mx.zeros((2, 3)), axis=2, key=k)
