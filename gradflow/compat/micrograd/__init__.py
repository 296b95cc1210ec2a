"""micrograd on gradflow: `Value` (engine) and `Module`, `Neuron`, `Layer`, `MLP` (nn).

Imports as in micrograd, with one prefix changed:

    from gradflow.compat.micrograd.engine import Value
    from gradflow.compat.micrograd.nn import Neuron, Layer, MLP
    from gradflow.compat.micrograd import Value, MLP          # or both from here

See `engine` for the places where behaviour differs from micrograd, and why.
"""
from . import engine, nn
from .engine import Value
from .nn import Module, Neuron, Layer, MLP

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP", "engine", "nn"]
