"""Losses: the WA AU loss, the edge co-occurrence loss and node/edge knowledge distillation."""
