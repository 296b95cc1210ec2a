"""gradflow: a small array autograd library that runs the same code on NumPy (CPU) and CuPy (CUDA).

    >>> import gradflow as gf
    >>> x = gf.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    >>> y = (x * x + 1).sum()
    >>> y.backward()
    >>> x.grad                      # dy/dx = 2x
"""
from . import autograd  # first: tensor.py builds on it
from .autograd import (
    Function, no_grad, enable_grad, set_grad_enabled, is_grad_enabled, grad, BackwardError,
)
from .tensor import Tensor
from .backend import (
    Device, DeviceError, device, get_device, default_device, set_default_device, cuda_available,
    cuda_device_count, set_debug, is_debug, dtype, float16, float32, float64, int8, int16, int32,
    int64, uint8, bool_,
)
from .backend.host_malloc import tune as tune_host_malloc  # opt-in: glibc keeps freed buffers
from .creation import (
    tensor, as_tensor, zeros, ones, full, arange, eye, zeros_like, ones_like, full_like, rand,
    randn, randint, randperm, rand_like, randn_like, manual_seed,
)
from .ops.elementwise import (
    add, sub, mul, div, pow, neg, abs, exp, log, sqrt, sin, cos, tanh, sigmoid, relu, leaky_relu,
    gelu, maximum, minimum, clip, where, astype, to_device,
)
from .ops.compare import sign, isfinite, logical_and, logical_or, logical_not
from .ops.reduce import (
    sum, mean, var, std, max, min, argmax, argmin, all, any, logsumexp, softmax, log_softmax,
)
from .ops.shape import (
    reshape, transpose, permute, swapaxes, broadcast_to, sum_to, squeeze, unsqueeze, flatten,
    concatenate, cat, stack, split,
)
from .ops.indexing import getitem
from .ops.linalg import matmul
from .testing import gradcheck, gradgradcheck, GradcheckError
from . import nn  # modules, layers, losses (gradflow.nn)
from . import optim  # optimizers, schedulers, clipping (gradflow.optim)
from . import data, datasets  # Dataset/DataLoader/IDX reader; MNIST, FashionMNIST, MNISTSample
from .serialization import save, load  # pickle-free checkpoints
from . import graph, viz  # graph walks and pictures of the tape

bool = bool_  # gf.bool, like torch.bool (shadows the builtin only inside this namespace)

__version__ = "0.1.0"
