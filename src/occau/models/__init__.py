"""Models: the MAE (ViT) encoder/decoder, the ME-GraphAU teacher and the latent-mining student."""
