"""Loading and saving arrays: ``load``, ``save``, ``savez``, ``savez_compressed``,
``save_safetensors``, ``save_gguf`` with MLX's signatures and semantics.

Parsing happens in Rust (``crates/oxmx-io``): every length and offset in a file is checked
against the file's real size and documented caps before anything is allocated, and a
malformed file raises ``FormatError`` naming the file. No pickle, ever. Saves to a path are
atomic (temporary file in the same directory, flushed, renamed over the target).

Beyond MLX (★): ``load`` reads sharded checkpoints from their
``*.safetensors.index.json``, and ``verify=public_key`` checks the file's detached
Ed25519 signature (``<file>.sig``, see ``oxmx.security``) before parsing it.
"""

import os

from oxmx import _oxmx as _native
from oxmx._oxmx import array

__all__ = ["load", "save", "savez", "savez_compressed", "save_safetensors", "save_gguf"]

_FORMATS = ("npy", "npz", "safetensors", "gguf")
# Saves are always atomic (temporary file + rename: a failed or killed save leaves the
# old file). OXMX_SAVE_FSYNC=1 also makes them durable across power loss (fsync of the
# file and its directory), at the cost of waiting for the disk; off by default, like
# NumPy, safetensors and MLX, which do not fsync either.
_SYNC = os.environ.get("OXMX_SAVE_FSYNC", "0") == "1"


def _path_of(file):
    if isinstance(file, (str, bytes, os.PathLike)):
        return os.fsdecode(os.fspath(file))
    return None


def _infer_format(name):
    low = name.lower()
    if low.endswith(".index.json"):
        return "safetensors_index"
    ext = os.path.splitext(low)[1].lstrip(".")
    if ext in _FORMATS:
        return ext
    return None


def _as_array(x, what):
    if isinstance(x, array):
        return x
    try:
        return array(x)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise TypeError(f"[{what}] expected an array, got {type(x).__name__}") from e


def load(file, /, format=None, return_metadata=False, *, stream=None, verify=None, signature=None):
    """Load array(s) from a ``.npy``, ``.npz``, ``.safetensors`` or ``.gguf`` file.

    ``file`` is a path (str or ``pathlib.Path``) or a binary file object. ``format`` is
    inferred from the extension when ``None``. Returns an array for ``.npy``, a dict of
    arrays otherwise, and ``(arrays, metadata)`` when ``return_metadata`` is true
    (safetensors: ``dict[str, str]``; GGUF: strings, lists of strings, and arrays for
    numbers). A path ending in ``.index.json`` loads a sharded safetensors checkpoint.

    ``verify`` (★): a public key (32 bytes, its hex, its key-file text, or a path to a
    ``.pub`` file). The file's detached signature (``signature=``: bytes of the signature
    file or its path; default ``<file>.sig``) is checked against the bytes that are then
    parsed; a mismatch raises ``IntegrityError`` before parsing. For an index file, the
    index and every shard need their own ``.sig``.
    """
    del stream  # loaded arrays are evaluated host data
    path = _path_of(file)
    data = None
    if path is not None:
        name = path
    else:
        if not hasattr(file, "read"):
            raise TypeError(f"[load] expected a path or a binary file object, got {type(file).__name__}")
        name = getattr(file, "name", None)
        name = name if isinstance(name, str) else "<file object>"
        data = file.read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("[load] the file object must be opened in binary mode")
        data = bytes(data)
    if format is None:
        format = _infer_format(name)
        if format is None:
            raise ValueError(
                f"[load] Could not infer the format of {name!r} from its extension; "
                f"pass format= (one of {', '.join(_FORMATS)})."
            )
    elif format not in _FORMATS and format != "safetensors_index":
        raise ValueError(f"[load] Unknown format {format!r} (one of {', '.join(_FORMATS)}).")
    if format == "safetensors" and path is not None and path.lower().endswith(".index.json"):
        format = "safetensors_index"
    if return_metadata and format in ("npy", "npz"):
        raise ValueError(f"[load] metadata not supported for format {format}")
    key = sig = None
    if verify is not None:
        from oxmx import security

        key = security._public_key_bytes(verify)
        if signature is not None:
            sig = security._signature_bytes(signature)
    return _native._io_load(
        format, name, path=path, data=data, return_metadata=bool(return_metadata), key=key, signature=sig
    )


def _write(file, fmt, ext, items, metadata=None, compress=False):
    path = _path_of(file)
    if path is not None:
        if not path.endswith(ext):
            path += ext
        _native._io_save(fmt, items, path=path, metadata=metadata, compress=compress, sync=_SYNC)
        return
    if not hasattr(file, "write"):
        raise TypeError(f"[save] expected a path or a binary file object, got {type(file).__name__}")
    file.write(_native._io_save(fmt, items, metadata=metadata, compress=compress))


def _named(arrays, what):
    if not isinstance(arrays, dict):
        raise TypeError(f"[{what}] arrays must be a dict of names to arrays")
    items = []
    for k, v in arrays.items():
        if not isinstance(k, str):
            raise TypeError(f"[{what}] array names must be str, got {type(k).__name__}")
        items.append((k, _as_array(v, what)))
    return items


def save(file, arr, /):
    """Save an array to a binary ``.npy`` file (``.npy`` is appended to a path without it)."""
    _write(file, "npy", ".npy", [("arr", _as_array(arr, "save"))])


def _savez(file, args, kwargs, compress, what):
    items = []
    names = set()
    for i, a in enumerate(args):
        items.append((f"arr_{i}", _as_array(a, what)))
        names.add(f"arr_{i}")
    for k, v in kwargs.items():
        if k in names:
            raise ValueError(f"[{what}] Cannot use un-named variables and keyword {k}")
        items.append((k, _as_array(v, what)))
    _write(file, "npz", ".npz", items, compress=compress)


def savez(file, *args, **kwargs):
    """Save several arrays to an uncompressed ``.npz`` file (positional ones as ``arr_0``,
    ``arr_1``...; keyword ones under their names)."""
    _savez(file, args, kwargs, False, "savez")


def savez_compressed(file, *args, **kwargs):
    """Save several arrays to a compressed (DEFLATE) ``.npz`` file."""
    _savez(file, args, kwargs, True, "savez_compressed")


def save_safetensors(file, arrays, metadata=None):
    """Save a dict of arrays to ``.safetensors``, with optional ``dict[str, str]`` metadata."""
    items = _named(arrays, "save_safetensors")
    meta = []
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError("[save_safetensors] metadata must be a dict of str to str")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("[save_safetensors] metadata keys and values must be str")
            meta.append((k, v))
    _write(file, "safetensors", ".safetensors", items, metadata=meta)


def save_gguf(file, arrays, metadata=None):
    """Save a dict of arrays to ``.gguf`` (v3). ``metadata`` values may be a str, a list
    of str, or a scalar or 1-D array."""
    items = _named(arrays, "save_gguf")
    meta = []
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError("[save_gguf] metadata must be a dict")
        for k, v in metadata.items():
            if not isinstance(k, str):
                raise TypeError("[save_gguf] metadata keys must be str")
            if isinstance(v, str):
                meta.append((k, v))
            elif isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
                meta.append((k, list(v)))
            elif isinstance(v, array):
                if v.ndim > 1:
                    raise ValueError(f"[save_gguf] metadata {k!r}: arrays must be 0-d or 1-d")
                meta.append((k, v))
            else:
                raise TypeError(
                    f"[save_gguf] metadata {k!r}: values must be str, a list of str, or an array"
                )
    _write(file, "gguf", ".gguf", items, metadata=meta)
