"""oxmx.core.fft — planned; every function raises a clear 'not implemented yet' error."""

from ._missing import _not_yet

_NAMES = {
    "linalg": "cholesky cholesky_inv cross det eig eigh eigvals eigvalsh inv lu lu_factor norm pinv qr slogdet solve solve_triangular svd tri_inv",
    "fft": "fft ifft fft2 ifft2 fftn ifftn rfft irfft rfft2 irfft2 rfftn irfftn fftfreq rfftfreq fftshift ifftshift stft istft",
    "fast": "rms_norm layer_norm rope scaled_dot_product_attention cross_entropy cuda_kernel precompiled_cuda_kernel metal_kernel",
    "distributed": "init all_sum all_max all_min all_gather sum_scatter send recv recv_like",
}["fft"].split()

for _n in _NAMES:
    globals()[_n] = _not_yet("fft." + _n, "TBD")
