"""The FEC triplet loss (Vemulapalli & Agarwala, CVPR 2019)."""
import torch
import torch.nn.functional as F


def triplet_loss(emb_a, emb_b, emb_c, types, margins, reduction="mean"):
    """Two-sided triplet hinge loss with a margin per triplet type.

    (a, b) is the similar pair and c the odd one out; with d the squared L2 distance
    and m = margins[type], each triplet costs
    max(0, d(a,b) - d(a,c) + m) + max(0, d(a,b) - d(b,c) + m).

    emb_a, emb_b, emb_c: (B, D) embeddings. types: (B,) ints indexing ``margins``
    (0/1/2: one-, two-, three-class). Returns the batch mean, or the (B,) losses with
    ``reduction="none"``.
    """
    if not emb_a.shape == emb_b.shape == emb_c.shape or emb_a.dim() != 2:
        raise ValueError(
            f"embeddings must share one (B, D) shape, got {tuple(emb_a.shape)}, "
            f"{tuple(emb_b.shape)}, {tuple(emb_c.shape)}"
        )
    # Float32 even under autocast: the hinges subtract close distances.
    a, b, c = emb_a.float(), emb_b.float(), emb_c.float()
    types = torch.as_tensor(types, device=a.device).long()
    if types.shape != a.shape[:1]:
        raise ValueError(f"types must have shape ({a.shape[0]},), got {tuple(types.shape)}")
    margin = torch.as_tensor(margins, dtype=a.dtype, device=a.device)[types]  # (B,)
    d_ab = (a - b).pow(2).sum(1)  # all (B,): nothing here can broadcast to B×B
    d_ac = (a - c).pow(2).sum(1)
    d_bc = (b - c).pow(2).sum(1)
    loss = F.relu(d_ab - d_ac + margin) + F.relu(d_ab - d_bc + margin)
    if reduction == "mean":
        return loss.mean()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
