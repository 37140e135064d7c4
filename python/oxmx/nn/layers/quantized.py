"""Quantized layers (MLX's ``QuantizedLinear``, ``QuantizedEmbedding``, ``QQLinear``) and
``quantize``, which swaps the quantizable leaves of a model for them.

The arithmetic is ``mx.quantize``/``mx.dequantize``/``mx.quantized_matmul``/``mx.qqmm``,
whose packed weights, scales and biases are bit-identical to MLX's, so a quantized model's
weights load into either framework.
"""

import math
from typing import Callable, Optional, Union

import oxmx.core as mx
from oxmx.core._quantize import mode_defaults
from oxmx.utils import tree_map_with_path

from .base import Module

__all__ = ["QuantizedLinear", "QuantizedEmbedding", "QQLinear", "quantize"]

_MODES = ("affine", "mxfp4", "nvfp4", "mxfp8")


def _resolve(layer, mode, group_size, bits):
    """``(group_size, bits)`` with ``None`` replaced by the mode's default."""
    if mode not in _MODES:
        raise ValueError(f"[{layer}] Invalid quantization mode {mode!r}. Valid modes are: " + ", ".join(_MODES) + ".")
    default_group, default_bits = mode_defaults(mode, layer)
    return (default_group if group_size is None else group_size, default_bits if bits is None else bits)


def _store_quantized(layer, weight):
    """Quantize ``weight`` into ``layer.weight``/``scales`` (and ``biases`` for affine)."""
    quantized = mx.quantize(weight, layer.group_size, layer.bits, mode=layer.mode)
    layer.weight, layer.scales, *biases = quantized
    layer.biases = biases[0] if biases else None


def _quantized_biases(layer):
    return layer["biases"] if "biases" in layer else None


def _unpacked_dims(layer):
    # Each uint32 of the packed weight holds 32 / bits values.
    return layer["weight"].shape[-1] * 32 // layer.bits


def _init_quantized_linear(layer, who, input_dims, output_dims, bias, group_size, bits, mode):
    """Quantize a Linear-style U(-sqrt(1/in), sqrt(1/in)) weight into ``layer`` (plus a zero
    bias) and freeze it: shared by QuantizedLinear and the quantized sharded layers."""
    layer.group_size, layer.bits = _resolve(who, mode, group_size, bits)
    layer.mode = mode
    scale = math.sqrt(1 / input_dims)
    _store_quantized(layer, mx.random.uniform(low=-scale, high=scale, shape=(output_dims, input_dims)))
    if bias:
        layer.bias = mx.zeros((output_dims,))
    layer.freeze()


def _quantized_linear_repr(layer):
    return (
        f"input_dims={_unpacked_dims(layer)}, output_dims={layer['weight'].shape[0]}, bias={'bias' in layer}, "
        f"group_size={layer.group_size}, bits={layer.bits}, mode={layer.mode}"
    )


class QuantizedLinear(Module):
    """A :class:`Linear` whose weight is quantized (``mx.quantize``); its parameters
    are frozen, as in MLX. ``from_linear`` converts a trained ``Linear``.

    Args:
        input_dims (int): the size of the input's last axis.
        output_dims (int): the size of the output's last axis.
        bias (bool): whether to add a bias. Default ``True``.
        group_size (int, optional): the quantization group size (mode default if ``None``).
        bits (int, optional): bits per weight (mode default if ``None``).
        mode (str): ``"affine"``, ``"mxfp4"``, ``"mxfp8"`` or ``"nvfp4"``. Default ``"affine"``.
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
    ):
        super().__init__()
        _init_quantized_linear(self, "QuantizedLinear", input_dims, output_dims, bias, group_size, bits, mode)

    def _extra_repr(self):
        return _quantized_linear_repr(self)

    def __call__(self, x):
        y = mx.quantized_matmul(
            x,
            self["weight"],
            scales=self["scales"],
            biases=_quantized_biases(self),
            transpose=True,
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
        )
        if "bias" in self:
            y = y + self["bias"]
        return y

    @classmethod
    def from_linear(
        cls, linear_layer: Module, group_size: Optional[int] = None, bits: Optional[int] = None, mode: str = "affine"
    ):
        """A ``QuantizedLinear`` holding the quantized weight (and the bias) of ``linear_layer``:
        the quantized parameters are frozen, the bias (the same array) stays trainable, as in MLX."""
        output_dims, input_dims = linear_layer.weight.shape
        layer = cls(input_dims, output_dims, False, group_size, bits, mode=mode)
        _store_quantized(layer, linear_layer.weight)
        if "bias" in linear_layer:
            # set after the constructor's freeze: as in MLX, the bias stays trainable
            layer.bias = linear_layer.bias
        return layer


class QuantizedEmbedding(Module):
    """An :class:`Embedding` whose table is quantized; ``from_embedding`` converts a
    trained ``Embedding``. Parameters are frozen, as in MLX.

    Args:
        num_embeddings (int): the vocabulary size.
        dims (int): the size of each embedding vector.
        group_size (int, optional): the quantization group size (mode default if ``None``).
        bits (int, optional): bits per weight (mode default if ``None``).
        mode (str): the quantization mode. Default ``"affine"``.
    """

    def __init__(
        self,
        num_embeddings: int,
        dims: int,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
    ):
        super().__init__()
        self.group_size, self.bits = _resolve("QuantizedEmbedding", mode, group_size, bits)
        self.mode = mode
        self.num_embeddings = num_embeddings
        self.dims = dims
        _store_quantized(self, mx.random.normal(shape=(num_embeddings, dims), scale=math.sqrt(1 / dims)))
        self.freeze()

    def _extra_repr(self):
        return f"{self.num_embeddings}, {self.dims}, group_size={self.group_size}, bits={self.bits}, mode={self.mode}"

    def __call__(self, x):
        flat = x.flatten()
        biases = _quantized_biases(self)
        rows = mx.dequantize(
            self["weight"][flat],
            scales=self["scales"][flat],
            biases=None if biases is None else biases[flat],
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
        )
        return rows.reshape(*x.shape, -1)

    def as_linear(self, x):
        """``x @ dequantized_weight.T``: the table as a tied output projection."""
        return mx.quantized_matmul(
            x,
            self["weight"],
            scales=self["scales"],
            biases=_quantized_biases(self),
            transpose=True,
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
        )

    @classmethod
    def from_embedding(
        cls, embedding_layer: Module, group_size: Optional[int] = None, bits: Optional[int] = None, mode: str = "affine"
    ):
        """A ``QuantizedEmbedding`` holding the quantized table of ``embedding_layer``."""
        num_embeddings, dims = embedding_layer.weight.shape
        layer = cls(num_embeddings, dims, group_size, bits, mode=mode)
        _store_quantized(layer, embedding_layer.weight)
        return layer.freeze()


class QQLinear(Module):
    """A bias-free linear layer that quantizes its input as well as its weight
    (``mx.qqmm``; modes ``"nvfp4"`` and ``"mxfp8"``).

    In training mode the weight is kept in full precision (so it gets gradients) and
    quantized on the fly; ``eval()`` stores it quantized with its ``scales`` and
    ``train()`` dequantizes it again.

    Args:
        input_dims (int): the size of the input's last axis.
        output_dims (int): the size of the output's last axis.
        group_size (int, optional): the quantization group size (mode default if ``None``).
        bits (int, optional): bits per element (mode default if ``None``).
        mode (str): ``"nvfp4"`` (default) or ``"mxfp8"``.
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "nvfp4",
    ):
        super().__init__()
        if mode not in ("nvfp4", "mxfp8"):
            raise ValueError(
                f"[QQLinear] Quantized activations are only supported for 'nvfp4' and 'mxfp8' modes, got {mode}."
            )
        self.group_size, self.bits = _resolve("QQLinear", mode, group_size, bits)
        self.mode = mode
        self._quantized = False
        scale = math.sqrt(1 / input_dims)
        self.weight = mx.random.uniform(low=-scale, high=scale, shape=(output_dims, input_dims))

    def _extra_repr(self):
        input_dims = _unpacked_dims(self) if self._quantized else self["weight"].shape[1]
        return (
            f"input_dims={input_dims}, output_dims={self['weight'].shape[0]}, "
            f"group_size={self.group_size}, bits={self.bits}, mode={self.mode}"
        )

    def quantize(self):
        """Store the weight quantized (no-op if it already is)."""
        if not self._quantized:
            self.weight, self.scales = mx.quantize(
                self["weight"], self.group_size, self.bits, mode=self.mode
            )
            self._quantized = True

    def dequantize(self):
        """Store the weight in full precision again (no-op if it already is)."""
        if self._quantized:
            self.weight = mx.dequantize(
                self["weight"], scales=self["scales"], group_size=self.group_size, bits=self.bits, mode=self.mode
            )
            del self.scales
            self._quantized = False

    def _set_training_mode(self, mode: bool):
        super()._set_training_mode(mode)
        if mode:
            self.dequantize()
        else:
            self.quantize()

    def __call__(self, x):
        return mx.qqmm(
            x,
            self["weight"],
            scales=self["scales"] if self._quantized else None,
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
        )

    @classmethod
    def from_linear(
        cls, linear_layer: Module, group_size: Optional[int] = None, bits: Optional[int] = None, mode: str = "nvfp4"
    ):
        """A ``QQLinear`` with the weight of the bias-free ``linear_layer``, in the same
        training/evaluation mode."""
        if "bias" in linear_layer:
            raise NotImplementedError("[QQLinear] QQLinear does not support bias yet.")
        output_dims, input_dims = linear_layer.weight.shape
        layer = cls(input_dims, output_dims, group_size, bits, mode=mode)
        layer.weight = linear_layer.weight
        return layer.train(linear_layer.training)


def quantize(
    model: Module,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    *,
    mode: str = "affine",
    quantize_input: bool = False,
    class_predicate: Optional[Callable[[str, Module], Union[bool, dict]]] = None,
):
    """Replace, in place, the leaf modules of ``model`` chosen by ``class_predicate``
    with their ``to_quantized(...)`` version.

    ``class_predicate(path, module)`` returns ``False``, ``True`` or a dict of keyword
    arguments for ``to_quantized``, used instead of ``group_size``/``bits``/``mode``/
    ``quantize_input`` (as in MLX, those are not merged in). A layer whose input size is
    not divisible by the group size raises (MLX does not skip it). By default every layer with a ``to_quantized`` method
    (``Linear``, ``Embedding``) is quantized; a model with none is left unchanged.
    """
    if class_predicate is None:
        class_predicate = lambda _, m: hasattr(m, "to_quantized")  # noqa: E731

    def maybe_quantize(path, module):
        choice = class_predicate(path, module)
        if not choice:
            return module
        if not hasattr(module, "to_quantized"):
            raise ValueError(f"[quantize] Unable to quantize model of type {type(module)}")
        if isinstance(choice, dict):
            # as in MLX, the dict replaces the other arguments (unnamed ones take their
            # defaults, e.g. the group size and bits of the dict's mode)
            return module.to_quantized(**choice)
        return module.to_quantized(group_size=group_size, bits=bits, mode=mode, quantize_input=quantize_input)

    leaves = tree_map_with_path(maybe_quantize, model.leaf_modules(), is_leaf=Module.is_module)
    model.update_modules(leaves)
