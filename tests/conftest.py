"""Suite-wide configuration for the oxmx tests.

* A Rust panic that reaches Python arrives as ``pyo3_runtime.PanicException``, which
  derives from ``BaseException``: ``pytest.raises(SomeError)`` does not catch it, and it
  must never be mistaken for a "clear exception".  Any test (setup, call or teardown)
  that ends with a PanicException anywhere in its exception chain is reported as a
  failure with an explicit message, whatever the test expected.
* Hypothesis runs with a fixed, derandomized profile so CI is reproducible and quick.
"""

import pytest

try:  # hypothesis is a dev dependency; the suite still runs without the profile
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "oxmx",
        max_examples=30,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    settings.load_profile("oxmx")
except ImportError:  # pragma: no cover
    pass


def _panic_in_chain(exc):
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if type(e).__name__ == "PanicException":
            return e
        stack.append(e.__cause__)
        stack.append(e.__context__)
        # ExceptionGroup (e.g. from threads or hypothesis) carries sub-exceptions
        stack.extend(getattr(e, "exceptions", ()) or ())
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if call.excinfo is None:
        return
    panic = _panic_in_chain(call.excinfo.value)
    if panic is not None:
        rep.outcome = "failed"
        rep.longrepr = (
            f"RUST PANIC reached Python during {call.when} of {item.nodeid}: "
            f"{type(panic).__module__}.{type(panic).__name__}: {panic}\n"
            f"(a panic is always a bug: the engine must raise a proper Python exception)\n\n"
            f"{rep.longrepr}"
        )
        if hasattr(rep, "wasxfail"):
            del rep.wasxfail


@pytest.fixture
def rng(request):
    """A NumPy generator seeded from the test id (stable across runs and orderings)."""
    import zlib

    import numpy as np

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
