"""Fixed 2-D sin-cos position tables, as MAE builds them (UPSTREAM.md §1.4).

The table is computed in float64 and cast to float32 so that it matches the official numbers; the first half of the
channels encodes the column (x), the second half the row (y), and a zero row is prepended for the cls token.
Tokens are numbered row-major: token ``i * grid_w + j`` sits at row ``i``, column ``j``.
"""

from __future__ import annotations

import torch
from timm.layers import resample_abs_pos_embed


def sincos_1d(embed_dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M,) float64 positions -> (M, embed_dim) float64: [sin(p w_k), cos(p w_k)], w_k = 10000^(-k/(D/2))."""
    if embed_dim % 2:
        raise ValueError(f"1-D sin-cos embedding needs an even width, got {embed_dim}")
    half = embed_dim // 2
    omega = 1.0 / 10000.0 ** (torch.arange(half, dtype=torch.float64) / half)  # (D/2,)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # (M, D/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (M, D)


def sincos_2d(embed_dim: int, grid_size: int | tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """The fixed table, (1 + H*W, D) float32 with ``cls_token`` (row 0 = zeros), else (H*W, D)."""
    if embed_dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs a width divisible by 4, got {embed_dim}")
    grid_h, grid_w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64), indexing="ij"
    )  # (H, W) each, row-major token order after flattening
    emb_x = sincos_1d(embed_dim // 2, cols.reshape(-1))  # (H*W, D/2): x (column) first
    emb_y = sincos_1d(embed_dim // 2, rows.reshape(-1))  # (H*W, D/2)
    table = torch.cat([emb_x, emb_y], dim=1)  # (H*W, D)
    if cls_token:
        table = torch.cat([table.new_zeros(1, embed_dim), table], dim=0)  # (1 + H*W, D)
    return table.float()


def is_sincos_table(table: torch.Tensor, grid_size: tuple[int, int], atol: float = 1e-4) -> bool:
    """Whether a stored (1, 1 + H*W, D) table is the fixed sin-cos table (so it can be regenerated at any grid)."""
    expected = sincos_2d(table.shape[-1], grid_size, cls_token=True)
    if table.shape[-2] != expected.shape[0]:
        return False
    return torch.allclose(table.reshape(expected.shape).float(), expected, atol=atol)


def resize_pos_embed(table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """A (1, 1 + h*w, D) table at another grid: regenerated if it is the fixed sin-cos table, else bicubic.

    Regenerating is exact (the table is a function of the grid); a learned table can only be interpolated.
    """
    if tuple(old_grid) == tuple(new_grid):
        return table
    if is_sincos_table(table, old_grid):
        return sincos_2d(table.shape[-1], new_grid, cls_token=True).unsqueeze(0).to(table.dtype)
    return resample_abs_pos_embed(table, list(new_grid), list(old_grid), num_prefix_tokens=1)
