"""occau: occlusion-robust facial action unit recognition by mining the latent space of masked autoencoders."""

__version__ = "0.1.0"
