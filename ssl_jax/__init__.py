"""ssl_jax: self-supervised, supervised and semi-supervised image representation learning in JAX."""

__version__ = '0.1.0'
