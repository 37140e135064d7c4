"""Every spec'd public name: generated calls through MLX and oxmx give the same outcome
(values, dtype, shape, printed form, or the same exception type). A difference listed in
known.py is counted (and its kind reported) instead of failing; any other fails."""

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples, phases
from diffkit import DifferenceError, check
from gen import Draw
from known import classify
from specs import SPECS

SEEN = collections.Counter()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_call_matches_mlx(name):
    spec = SPECS[name]

    @settings(max_examples=examples(), database=None, phases=phases())
    @given(st.data())
    def run(data):
        call = spec.gen(Draw(data))
        try:
            check(call, exact=spec.exact, rtol=spec.rtol, atol=spec.atol, check_repr=spec.check_repr)
        except DifferenceError as e:
            known = classify(name, str(e))
            if known is None:
                raise
            SEEN[(known.kind, known.key)] += 1

    run()


def test_known_differences_summary(capsys):
    """Runs last (alphabetical after the parametrized test in this module): prints which
    documented differences the generated calls hit."""
    with capsys.disabled():
        for (kind, key), n in sorted(SEEN.items()):
            print(f"\n  known difference [{kind}] {key}: {n} example(s)", end="")
