"""gradflow.nn: modules, layers, losses and initialisation, with PyTorch's names.

    >>> import gradflow as gf
    >>> model = gf.nn.MLP([784, 1000, 1000, 10])
    >>> loss = gf.nn.functional.cross_entropy(model(gf.randn(100, 784)), gf.randint(0, 10, 100))
    >>> loss.backward()
"""
from . import functional, init, parallel
from .module import Module, Parameter, StateDictError, IncompatibleKeys
from .layers import Linear, Sequential, ModuleList, MLP, Flatten, Dropout
from .activations import ReLU, Tanh, Sigmoid, GELU, LeakyReLU, Softmax, LogSoftmax, Identity
from .norm import LayerNorm, BatchNorm1d, BatchNorm2d
from .conv import Conv2d, MaxPool2d, AvgPool2d
from .loss import CrossEntropyLoss, NLLLoss, MSELoss, BCEWithLogitsLoss

__all__ = [
    "functional", "init", "parallel", "Module", "Parameter", "StateDictError", "IncompatibleKeys", "Linear",
    "Sequential", "ModuleList", "MLP", "Flatten", "Dropout", "ReLU", "Tanh", "Sigmoid", "GELU",
    "LeakyReLU", "Softmax", "LogSoftmax", "Identity", "LayerNorm", "BatchNorm1d", "BatchNorm2d",
    "Conv2d", "MaxPool2d", "AvgPool2d",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss",
]
