"""Names of MLX's API that later issues deliver. Each raises a clear error until then."""

__all__ = []


def _not_yet(name, issue):
    def f(*args, **kwargs):
        raise NotImplementedError(f"[{name}] is not implemented yet in oxmx (planned: issue #{issue}).")

    f.__name__ = name
    f.__qualname__ = name
    f.__doc__ = f"Not implemented yet (issue #{issue})."
    return f


_PLANNED = {}

for _name, _issue in _PLANNED.items():
    globals()[_name] = _not_yet(_name, _issue if _issue else "TBD")
    __all__.append(_name)
