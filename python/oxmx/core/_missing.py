"""Names of MLX's API that later issues deliver. Each raises a clear error until then."""

__all__ = []


def _not_yet(name, issue):
    def f(*args, **kwargs):
        raise NotImplementedError(f"[{name}] is not implemented yet in oxmx (planned: issue #{issue}).")

    f.__name__ = name
    f.__qualname__ = name
    f.__doc__ = f"Not implemented yet (issue #{issue})."
    return f


_PLANNED = {
    # later engine work (issues to be filed)
    "quantize": 0, "dequantize": 0,
    "quantized_matmul": 0, "gather_qmm": 0, "qqmm": 0, "gather_qqmm": 0, "to_fp8": 0,
    "from_fp8": 0, "export_function": 0, "import_function": 0, "exporter": 0, "export_to_dot": 0,
}

for _name, _issue in _PLANNED.items():
    globals()[_name] = _not_yet(_name, _issue if _issue else "TBD")
    __all__.append(_name)
