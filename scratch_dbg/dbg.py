import numpy as np, oxmx.core as mx
x = mx.array(np.linspace(-3, 3, 50, dtype=np.float32))
def show(name, f, *a):
    c = mx.compile(f)
    r1, r2 = c(*a), f(*a)
    r1 = r1 if isinstance(r1, (list, tuple)) else [r1]
    r2 = r2 if isinstance(r2, (list, tuple)) else [r2]
    for i, (p, q) in enumerate(zip(r1, r2)):
        pn, qn = np.array(p), np.array(q)
        bad = np.nonzero(pn.view(np.uint32) != qn.view(np.uint32))[0] if pn.dtype == np.float32 else np.nonzero(pn != qn)[0]
        print(name, "out", i, "bad", len(bad), [(float(np.array(x)[j]), float(pn[j]), float(qn[j])) for j in bad[:3]])
show("tanh*3", lambda x: mx.tanh(x) * 3, x)
show("tanh", lambda x: mx.tanh(x) + 0, x)
show("y,y+exp", lambda x: (lambda y: (y, y + mx.exp(y)))(mx.tanh(x) * 3), x)
show("exp+", lambda y: y + mx.exp(y), x)
show("exp*1", lambda y: mx.exp(y) * 1, x)
show("sin*1", lambda y: mx.sin(y) * 1, x)
show("mul add", lambda y: y * 3 + 1, x)
import oxmx
print(mx.default_device())
