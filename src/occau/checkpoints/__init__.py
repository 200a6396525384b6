"""Checkpoints: occau's own self-describing safetensors format and importers for foreign formats."""
