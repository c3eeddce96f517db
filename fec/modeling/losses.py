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


def concordance_correlation(pred, target):
    """Lin's concordance correlation coefficient of each column: (D,) for (N, D) inputs.

    2·cov(p, t) / (var(p) + var(t) + (mean(p) − mean(t))²), population moments. It is
    1 only for p = t, and, unlike Pearson's r, it falls when p is shifted or scaled.
    """
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f"pred and target must share one (N, D) shape, got {tuple(pred.shape)}, "
                         f"{tuple(target.shape)}")
    p, t = pred.float(), target.float()
    mp, mt = p.mean(0), t.mean(0)
    cov = ((p - mp) * (t - mt)).mean(0)
    var_p, var_t = (p - mp).pow(2).mean(0), (t - mt).pow(2).mean(0)
    # The epsilon keeps a constant batch (both variances 0) finite.
    return 2 * cov / (var_p + var_t + (mp - mt).pow(2) + 1e-8)


def ccc_loss(pred, target):
    """1 − CCC, averaged over the columns; the batch is the sample the CCC is taken over."""
    return (1 - concordance_correlation(pred, target)).mean()
