"""Matrix products with NumPy's matmul rules: 1-D by 1-D, 1-D by 2-D, batched N-D broadcasting."""
from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor
from .elementwise import astype
from .shape import reshape, sum_to, swapaxes, unsqueeze


class MatMul(Function):
    """d (a @ b) = dy @ b^T for a, a^T @ dy for b (1-D operands promoted, batch dims summed)"""

    def forward(self, a, b):
        return a @ b

    def backward(self, gy):
        a, b = self.inputs
        if a.dtype != b.dtype:  # NumPy promoted the product: each gradient in its input's dtype
            ga, gb = self._backward(a, b, gy)
            return (None if ga is None else astype(ga, a.dtype),
                    None if gb is None else astype(gb, b.dtype))
        return self._backward(a, b, gy)

    def backward_arrays(self, gy):
        a, b = self.inputs
        if a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype:
            return None  # the general rule handles 1-D, batched and mixed-dtype products
        return (gy @ b.data.T if a.requires_grad else None,
                a.data.T @ gy if b.requires_grad else None)

    @staticmethod
    def _backward(a, b, gy):
        if a.ndim == 2 and b.ndim == 2:  # the common case, kept short
            return (matmul(gy, b.T) if a.requires_grad else None,
                    matmul(a.T, gy) if b.requires_grad else None)
        if a.ndim == 1 and b.ndim == 1:
            return (gy * b if a.requires_grad else None, gy * a if b.requires_grad else None)
        a2 = unsqueeze(a, 0) if a.ndim == 1 else a
        b2 = unsqueeze(b, -1) if b.ndim == 1 else b
        g2 = gy
        if a.ndim == 1:
            g2 = unsqueeze(g2, -2)
        if b.ndim == 1:
            g2 = unsqueeze(g2, -1)
        ga = gb = None
        if a.requires_grad:
            ga = reshape(sum_to(matmul(g2, swapaxes(b2, -1, -2)), a2.shape), a.shape)
        if b.requires_grad:
            gb = reshape(sum_to(matmul(swapaxes(a2, -1, -2), g2), b2.shape), b.shape)
        return ga, gb


def matmul(a, b) -> Tensor:
    """The matrix product a @ b, with NumPy's matmul rules (the `@` operator calls this).

    1-D @ 1-D is a dot product (a 0-d result); a 1-D left operand acts as a row and a 1-D right
    operand as a column, the added axis removed again; operands with more than 2 dims are stacks
    of matrices whose batch dims broadcast. Gradients are summed back over broadcast batch dims.

    Args:
        a, b: Tensors with at least 1 dim, on one device.

    Returns:
        A Tensor.

    Raises:
        ValueError: the inner dims differ or the batch dims do not broadcast (both shapes are
            named), or an operand is 0-d.
        TypeError: an operand is not a Tensor.

    Example:
        >>> (gf.randn(10, 3, 4) @ gf.randn(4, 5)).shape     # (10, 3, 5)
        >>> (gf.randn(4) @ gf.randn(4, 5)).shape            # (5,)
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"matmul needs two Tensors, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: 0-d operands are not allowed (shapes {a.shape} and "
                         f"{b.shape}); use * for scaling")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: "
                         f"{ka} (last dim of a) != {kb} ({'dim 0' if b.ndim == 1 else 'dim -2'}"
                         " of b)")
    if a.ndim > 2 or b.ndim > 2:
        ba, bb = a.shape[:-2], b.shape[:-2]
        for m, n in zip(ba[::-1], bb[::-1]):
            if m != n and m != 1 and n != 1:
                raise ValueError(f"matmul: batch dims {ba} and {bb} of shapes {a.shape} and "
                                 f"{b.shape} do not broadcast")
    return MatMul()(a, b)
