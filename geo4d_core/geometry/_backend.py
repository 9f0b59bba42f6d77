"""Private array-backend helper: one implementation of each geometry function serves numpy and torch.

`backend_for(*inputs, like=...)` inspects the inputs and returns a `Backend` that knows the array
library (numpy or torch), the floating dtype of the result and, for torch, the device. Rules:

- If any input is a torch tensor the result is a torch tensor, else a numpy array.
- The result dtype is the dtype of `like` (the function's main data argument) when that is floating;
  otherwise the promotion of the floating inputs; otherwise float64 (numpy) / torch's default dtype.
- torch results live on the device of `like` (if it is a tensor), else of the first tensor input.

torch is imported lazily: a tensor cannot exist unless torch was already imported, so numpy-only
callers never pay for the import.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Sequence

import numpy as np


def is_torch(x: Any) -> bool:
    """True when `x` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_floating(x: Any) -> bool:
    if is_torch(x):
        return bool(x.is_floating_point())
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)


class Backend:
    """Array helpers bound to one library, one float dtype and (torch) one device."""

    def __init__(self, torch_mod: Any, dtype: Any, device: Any = None) -> None:
        self.torch = torch_mod
        self.is_torch = torch_mod is not None
        self.xp = torch_mod if self.is_torch else np
        self.dtype = dtype
        self.device = device
        self.bool = torch_mod.bool if self.is_torch else np.bool_
        self.float64 = torch_mod.float64 if self.is_torch else np.float64

    # -- construction / conversion -------------------------------------------------------------
    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """`x` as this backend's array with `dtype` (default: the float dtype), on the device."""
        dtype = self.dtype if dtype is None else dtype
        if self.is_torch:
            if is_torch(x):
                return x.to(device=self.device, dtype=dtype)
            return self.torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)
        if is_torch(x):  # e.g. a tensor mask passed with numpy data: follow the data
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=dtype)

    def as_bool(self, x: Any) -> Any:
        return self.asarray(x, dtype=self.bool)

    def zeros(self, shape: Sequence[int], dtype: Any = None) -> Any:
        dtype = self.dtype if dtype is None else dtype
        if self.is_torch:
            return self.torch.zeros(tuple(shape), dtype=dtype, device=self.device)
        return np.zeros(tuple(shape), dtype=dtype)

    def arange(self, n: int, dtype: Any = None) -> Any:
        dtype = self.dtype if dtype is None else dtype
        if self.is_torch:
            return self.torch.arange(n, dtype=dtype, device=self.device)
        return np.arange(n, dtype=dtype)

    def stack(self, xs: Sequence[Any], axis: int = -1) -> Any:
        if self.is_torch:
            return self.torch.stack(list(xs), dim=axis)
        return np.stack(xs, axis=axis)

    def concat(self, xs: Sequence[Any], axis: int = -1) -> Any:
        if self.is_torch:
            return self.torch.cat(list(xs), dim=axis)
        return np.concatenate(xs, axis=axis)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        if self.is_torch:
            t = self.torch
            a = a if is_torch(a) else t.as_tensor(a, dtype=self.dtype, device=self.device)
            b = b if is_torch(b) else t.as_tensor(b, dtype=self.dtype, device=self.device)
            return t.where(cond, a, b)
        return np.where(cond, a, b)

    def zero_where_false(self, x: Any, keep: Any) -> Any:
        """`x` with zeros where the boolean `keep` (shape x.shape or x.shape[:-1]) is False.

        numpy: in place (x must be a fresh array owned by the caller), via boolean indexing, which is
        several times faster than `np.where` with a (..., 1)-broadcast mask. torch: out of place
        (`masked_fill`, also much faster than a broadcast `torch.where`), so autograd keeps working.
        """
        if self.is_torch:
            drop = ~keep if keep.ndim == x.ndim else ~keep[..., None]
            return x.masked_fill(drop, 0.0)
        if not keep.all():
            x[~keep] = 0
        return x

    def isfinite(self, x: Any) -> Any:
        return self.xp.isfinite(x)

    def any_true(self, x: Any) -> bool:
        """Python bool: is any element of the boolean array `x` true."""
        return bool(x.any())

    def norm(self, x: Any, axis: int = -1, keepdims: bool = False) -> Any:
        if self.is_torch:
            return self.torch.linalg.vector_norm(x, dim=axis, keepdim=keepdims)
        return np.linalg.norm(x, axis=axis, keepdims=keepdims)

    def atan2(self, y: Any, x: Any) -> Any:
        return self.torch.atan2(y, x) if self.is_torch else np.arctan2(y, x)

    def abs(self, x: Any) -> Any:
        return self.xp.abs(x)

    def mT(self, x: Any) -> Any:
        """Swap the last two axes."""
        return x.transpose(-1, -2) if self.is_torch else np.swapaxes(x, -1, -2)

    def broadcast_to(self, x: Any, shape: Sequence[int]) -> Any:
        return self.xp.broadcast_to(x, tuple(shape))

    def errstate(self) -> contextlib.AbstractContextManager:
        """Silence numpy floating-point warnings (no-op for torch, which never warns)."""
        if self.is_torch:
            return contextlib.nullcontext()
        return np.errstate(all="ignore")


def backend_for(*inputs: Any, like: Any = None) -> Backend:
    """The backend for `inputs` (see the module docstring for the type, dtype and device rules)."""
    tensors = [x for x in inputs if is_torch(x)]
    if is_torch(like):
        tensors.insert(0, like)
    if tensors:
        import torch  # already imported: a tensor exists

        if like is not None and _is_floating(like):
            dtype = like.dtype if is_torch(like) else _np_to_torch_dtype(torch, like.dtype)
        else:
            dtype = None
            for x in inputs:
                if _is_floating(x):
                    xd = x.dtype if is_torch(x) else _np_to_torch_dtype(torch, x.dtype)
                    dtype = xd if dtype is None else torch.promote_types(dtype, xd)
            if dtype is None:
                dtype = torch.get_default_dtype()
        return Backend(torch, dtype, tensors[0].device)
    if like is not None and not isinstance(like, np.ndarray):
        like = np.asarray(like)
    if like is not None and np.issubdtype(like.dtype, np.floating):
        return Backend(None, like.dtype)
    floats = [x.dtype for x in inputs if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)]
    return Backend(None, np.result_type(*floats) if floats else np.dtype(np.float64))


def _np_to_torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


def dtype_name(x: Any) -> str:
    """Readable dtype of an array or tensor, for error messages."""
    return str(getattr(x, "dtype", type(x).__name__))
