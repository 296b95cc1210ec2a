"""Matrix products with NumPy's matmul rules: 1-D by 1-D, 1-D by 2-D, batched N-D broadcasting."""
from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor
from ._util import same_dtype
from .elementwise import unbroadcast


class MatMul(Function):
    """d (a @ b) = dy @ b^T for a, a^T @ dy for b (1-D operands promoted, batch dims summed)"""

    def forward(self, a, b):
        return a @ b

    def backward(self, gy, y, a, b):
        need_a, need_b = self.needs_input_grad
        if a.ndim == 2 and b.ndim == 2:  # the common case, kept short
            return (unbroadcast(gy @ b.T, a) if need_a else None,
                    unbroadcast(a.T @ gy, b) if need_b else None)
        if a.ndim == 1 and b.ndim == 1:  # a dot product
            return (unbroadcast(gy * b, a) if need_a else None,
                    unbroadcast(gy * a, b) if need_b else None)
        # A 1-D operand is a row (a) or a column (b): put the missing axis back, in gy too.
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
        g2 = gy.reshape(gy.shape[:-1] + (1,) + gy.shape[-1:]) if a.ndim == 1 else gy
        g2 = g2.reshape(g2.shape + (1,)) if b.ndim == 1 else g2
        return (unbroadcast(g2 @ b2.swapaxes(-1, -2), a2).reshape(a.shape) if need_a else None,
                unbroadcast(a2.swapaxes(-1, -2) @ g2, b2).reshape(b.shape) if need_b else None)


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
        TypeError: an operand is not a Tensor, or their dtypes differ (PyTorch's rule).

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
    same_dtype("matmul", ("a", "b"), a, b)
    return MatMul()(a, b)
