"""fastdream.eval.r_precision on embeddings whose answer is known: ties, one candidate, bad inputs."""
from __future__ import annotations

import pytest
import torch

from fastdream.eval import r_precision, retrieval_hits


def _brute_force(img, txt, idx):
    """Reference: loop in Python over images and captions, pessimistic ties (exact)."""
    hits = []
    for i in range(img.shape[0]):
        a = img[i].double() / img[i].double().norm()
        sims = [float(a @ (t.double() / t.double().norm())) for t in txt]
        true = sims[int(idx[i])]
        hits.append(all(s < true for j, s in enumerate(sims) if j != int(idx[i])))
    return sum(hits) / len(hits)


def test_identity_embeddings_are_all_correct_and_permuted_captions_all_wrong():
    eye = torch.eye(5)
    assert r_precision(eye, eye, torch.arange(5)) == 1.0
    assert r_precision(eye, eye, torch.roll(torch.arange(5), 1)) == 0.0


def test_known_fraction_and_cosine_scale_invariance():
    txt = torch.eye(4)
    # images 0,1 point at their caption; image 2 points at caption 3; image 3 is closest to caption 3 (its own)
    img = torch.tensor([[2.0, 0.1, 0, 0], [0, 5.0, 0, 1.0], [0, 0, 0.2, 1.0], [0.1, 0.1, 0.1, 3.0]])
    idx = torch.tensor([0, 1, 2, 3])
    assert r_precision(img, txt, idx) == pytest.approx(0.75)
    # cosine similarity: scaling any row changes nothing
    scale = torch.tensor([[3.0], [0.01], [7.0], [100.0]])
    assert r_precision(img * scale, txt * 0.5, idx) == pytest.approx(0.75)


def test_matches_brute_force_on_random_embeddings():
    g = torch.Generator().manual_seed(1)
    for m, p, d in [(7, 3, 5), (20, 11, 16), (1, 2, 3)]:
        img = torch.randn(m, d, generator=g)
        txt = torch.randn(p, d, generator=g)
        idx = torch.randint(0, p, (m,), generator=g)
        assert r_precision(img, txt, idx) == pytest.approx(_brute_force(img, txt, idx), abs=0)


def test_tie_with_wrong_caption_is_a_miss():
    # the same caption listed twice: every retrieval ties with the duplicate
    txt = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    img = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    assert r_precision(img, txt, torch.tensor([0, 1])) == 0.0
    # an image exactly between its caption and a wrong one
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    img = torch.tensor([[1.0, 1.0]])
    assert r_precision(img, txt, torch.tensor([0])) == 0.0
    assert r_precision(img, txt, torch.tensor([1])) == 0.0
    # a margin below float32 round-off (tie_atol) still counts as a tie; a clear margin is a hit
    img = torch.tensor([[1.0 + 1e-9, 1.0], [1.0, 0.9]], dtype=torch.float64)
    assert retrieval_hits(img, txt.double(), torch.tensor([0, 0])).tolist() == [False, True]
    assert retrieval_hits(img, txt.double(), torch.tensor([0, 0]), tie_atol=0.0).tolist() == [True, True]


def test_single_candidate_is_always_retrieved():
    img = torch.randn(6, 4)
    txt = torch.randn(1, 4)
    assert r_precision(img, txt, torch.zeros(6, dtype=torch.long)) == 1.0
    # even an image pointing away from the only caption: there is nothing else to choose
    assert r_precision(-txt, txt, torch.zeros(1, dtype=torch.long)) == 1.0


def test_accepts_half_precision_and_int32_index():
    eye = torch.eye(3)
    assert r_precision(eye.half(), eye.bfloat16(), torch.arange(3, dtype=torch.int32)) == 1.0


@pytest.mark.parametrize("img, txt, idx, match", [
    (torch.randn(4), torch.randn(3, 4), torch.zeros(4, dtype=torch.long), "image_embeds must have shape"),
    (torch.randn(2, 4), torch.randn(3, 4, 1), torch.zeros(2, dtype=torch.long), "text_embeds must have shape"),
    (torch.randn(2, 4), torch.randn(3, 5), torch.zeros(2, dtype=torch.long), "text_embeds has dimension 5"),
    (torch.randn(2, 4), torch.randn(3, 4), torch.zeros(3, dtype=torch.long), r"true_index must have shape \[2\]"),
    (torch.randn(2, 4), torch.randn(3, 4), torch.zeros(2), "true_index must be an integer"),
    (torch.randn(2, 4), torch.randn(3, 4), torch.tensor([0, 3]), r"true_index values must lie in \[0, 3\)"),
    (torch.randn(2, 4), torch.randn(3, 4), torch.tensor([-1, 0]), "true_index values"),
    (torch.randn(0, 4), torch.randn(3, 4), torch.zeros(0, dtype=torch.long), "image_embeds has no rows"),
    (torch.randn(2, 4), torch.randn(0, 4), torch.zeros(2, dtype=torch.long), "text_embeds has no rows"),
    (torch.zeros(2, 4), torch.randn(3, 4), torch.zeros(2, dtype=torch.long), "image_embeds row 0 is all zeros"),
    (torch.randn(2, 4), torch.full((3, 4), float("nan")), torch.zeros(2, dtype=torch.long), "text_embeds contains"),
    (torch.randint(0, 3, (2, 4)), torch.randn(3, 4), torch.zeros(2, dtype=torch.long), "image_embeds must be a f"),
    ([[1.0]], torch.randn(1, 1), torch.zeros(1, dtype=torch.long), "image_embeds must be a torch.Tensor"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(img, txt, idx, match):
    with pytest.raises(ValueError, match=match):
        r_precision(img, txt, idx)
