"""Compatibility layers: the teaching projects micrograd and MiniFlow, running on gradflow's tape.

Change one import line and a micrograd or MiniFlow program runs on gradflow's arrays and engine
(and so on CUDA too):

    from micrograd.engine import Value      ->  from gradflow.compat.micrograd.engine import Value
    from micrograd.nn import MLP            ->  from gradflow.compat.micrograd.nn import MLP
    from miniflow import *                  ->  from gradflow.compat.miniflow import *

Each module's docstring lists the few places where it behaves differently from the original.
"""
