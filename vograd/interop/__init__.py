"""Trained learned optimizers outside vograd: PyTorch (`vograd.interop.torch`, the
``torch`` extra) and plain ``.npz`` files readable with numpy alone (`vograd.interop.npz`).

Not imported by ``import vograd``: each module is imported on its own.
"""
