"""Array methods that forward to module functions (``x.sum(0)`` → ``mx.sum(x, 0)``)."""

from oxmx import _oxmx as _n

abs = _n.abs
all = _n.all
any = _n.any
argmax = _n.argmax
argmin = _n.argmin
conj = _n.conj
cos = _n.cos
exp = _n.exp
flatten = _n.flatten
log = _n.log
log10 = _n.log10
log1p = _n.log1p
log2 = _n.log2
logsumexp = _n.logsumexp
max = _n.max
mean = _n.mean
min = _n.min
moveaxis = _n.moveaxis
prod = _n.prod
reciprocal = _n.reciprocal
rsqrt = _n.rsqrt
sin = _n.sin
split = _n.split
sqrt = _n.sqrt
square = _n.square
squeeze = _n.squeeze
std = _n.std
sum = _n.sum
swapaxes = _n.swapaxes
var = _n.var
cummax = _n.cummax
cummin = _n.cummin
cumprod = _n.cumprod
cumsum = _n.cumsum
logcumsumexp = _n.logcumsumexp
from ._composite import diag, diagonal, round  # noqa: E402,F401
