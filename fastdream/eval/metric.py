"""Top-1 CLIP retrieval precision (R@1) by cosine similarity, with pessimistic tie handling."""
from __future__ import annotations

import torch

from fastdream.ops._checks import check_tensor

# Two cosine similarities closer than this (computed in float64 from unit vectors) count as a tie. CLIP embeddings
# are float32 (about 7 significant digits), so smaller differences carry no information about the caption.
TIE_ATOL = 1e-6


def _unit_rows(name: str, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    norms = x.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        bad = int((norms[:, 0] == 0).nonzero()[0])
        raise ValueError(f"{name} row {bad} is all zeros; cosine similarity is undefined for it")
    return x / norms


def retrieval_hits(image_embeds: torch.Tensor, text_embeds: torch.Tensor, true_index: torch.Tensor,
                   *, tie_atol: float = TIE_ATOL) -> torch.Tensor:
    """Per image, whether its true caption is the unique top-1 caption by cosine similarity: bool [M].

    image_embeds: [M, D] float; text_embeds: [P, D] float (need not be normalised; rows are normalised here);
    true_index: [M] integer in [0, P), the row of text_embeds holding each image's caption.
    Ties are pessimistic: an image counts as a hit only when every other caption's similarity is lower than the true
    caption's by more than `tie_atol`, so a tie with a wrong caption (for instance the same caption listed twice) is
    a miss. With a single candidate (P == 1) there is nothing to confuse it with, so every image is a hit.
    """
    check_tensor("image_embeds", image_embeds, shape=(None, None))
    check_tensor("text_embeds", text_embeds, shape=(None, None))
    check_tensor("true_index", true_index, shape=(image_embeds.shape[0],))
    if image_embeds.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"image_embeds must be a floating tensor, got {image_embeds.dtype}")
    if text_embeds.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"text_embeds must be a floating tensor, got {text_embeds.dtype}")
    if true_index.dtype.is_floating_point or true_index.dtype.is_complex or true_index.dtype == torch.bool:
        raise ValueError(f"true_index must be an integer tensor, got {true_index.dtype}")
    m, d = image_embeds.shape
    p = text_embeds.shape[0]
    if m == 0:
        raise ValueError("image_embeds has no rows; there is nothing to evaluate")
    if p == 0:
        raise ValueError("text_embeds has no rows; retrieval needs at least one candidate caption")
    if text_embeds.shape[1] != d:
        raise ValueError(f"text_embeds has dimension {text_embeds.shape[1]} but image_embeds has {d}; "
                         "embed both with the same CLIP model")
    if tie_atol < 0:
        raise ValueError(f"tie_atol must be >= 0, got {tie_atol}")
    idx = true_index.detach().to("cpu", torch.int64)
    if (idx < 0).any() or (idx >= p).any():
        raise ValueError(f"true_index values must lie in [0, {p}) (the rows of text_embeds), "
                         f"got min {int(idx.min())} and max {int(idx.max())}")
    img = _unit_rows("image_embeds", image_embeds.cpu())
    txt = _unit_rows("text_embeds", text_embeds.cpu())
    sims = img @ txt.T  # [M, P] cosine similarities
    rows = torch.arange(m)
    true_sim = sims[rows, idx]
    others = sims.clone()
    others[rows, idx] = -torch.inf  # the true caption never competes with itself
    best_other = others.max(dim=1).values  # -inf when P == 1
    return true_sim - best_other > tie_atol


def r_precision(image_embeds: torch.Tensor, text_embeds: torch.Tensor, true_index: torch.Tensor,
                *, tie_atol: float = TIE_ATOL) -> float:
    """Fraction of images whose true caption is retrieved top-1 among all P captions (R@1), in [0, 1].

    Shapes and tie rule as in retrieval_hits: a tie with a wrong caption counts as a miss.
    """
    return float(retrieval_hits(image_embeds, text_embeds, true_index, tie_atol=tie_atol).double().mean())
