"""Models: the shared Stable Diffusion sampler, component loading and one module per safety method.

Importing this package is cheap: nothing here imports torch or diffusers until a function needs them.
"""
