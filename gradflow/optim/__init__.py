"""gradflow.optim: optimizers, learning-rate schedulers and gradient clipping (PyTorch's names).

    >>> opt = gf.optim.Adam(model.parameters(), lr=1e-3)
    >>> for x, y in loader:
    ...     opt.zero_grad()
    ...     loss = gf.nn.functional.cross_entropy(model(x), y)
    ...     loss.backward()
    ...     opt.step()
"""
from . import lr_scheduler
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW
from .rmsprop import RMSprop
from .clip import clip_grad_norm_, clip_grad_value_

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler", "clip_grad_norm_",
           "clip_grad_value_"]
