"""The differentiable ops, grouped by family; each Function sits next to its lowercase wrapper."""
