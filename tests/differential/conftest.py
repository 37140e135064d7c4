"""The differential tests need real MLX (``mlx[cpu]``, in requirements-dev.txt). Without
it every test here is skipped with one clear reason instead of failing to import."""

import importlib.util
import os
import sys

import pytest

HERE = os.path.dirname(__file__)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

HAVE_MLX = importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx.core") is not None

if not HAVE_MLX:
    collect_ignore_glob = ["test_*.py"]

    def pytest_collection_modifyitems(config, items):  # pragma: no cover
        pass

    @pytest.fixture(scope="session", autouse=True)
    def _mlx_missing():  # pragma: no cover
        pytest.skip("real MLX is not installed (pip install 'mlx[cpu]'); differential tests skipped")


def examples():
    """Examples per name: OXMX_DIFF_EXAMPLES (make test-differential raises it)."""
    return int(os.environ.get("OXMX_DIFF_EXAMPLES", "12"))


def phases():
    """No shrinking by default (a failing example is reported as drawn, quickly);
    OXMX_DIFF_SHRINK=1 asks hypothesis for the minimal example."""
    from hypothesis import Phase

    if os.environ.get("OXMX_DIFF_SHRINK") == "1":
        return list(Phase)
    return [Phase.explicit, Phase.reuse, Phase.generate]


@pytest.fixture(autouse=True)
def _watchdog():
    """A generated call that never finishes (in either framework) must fail the run with
    a traceback, not hang CI: every test here gets 300 s."""
    import faulthandler

    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
