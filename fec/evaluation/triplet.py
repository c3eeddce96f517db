"""Triplet prediction accuracy: a triplet (a, b, c), (a, b) the annotated similar pair,
is predicted correctly when d(a,b) < d(a,c) and d(a,b) < d(b,c). Ties are wrong."""
import torch

from fec.data.fec_csv import TRIPLET_TYPES


def triplet_correct(embeddings, triplets):
    """(M,) bool: whether each triplet is predicted correctly from ``embeddings``."""
    e = torch.as_tensor(embeddings).double()
    t = torch.as_tensor(triplets, dtype=torch.long)
    a, b, c = e[t[:, 0]], e[t[:, 1]], e[t[:, 2]]
    d_ab = (a - b).pow(2).sum(1)
    d_ac = (a - c).pow(2).sum(1)
    d_bc = (b - c).pow(2).sum(1)
    return (d_ab < d_ac) & (d_ab < d_bc)


def evaluate_triplets(embeddings, triplets, types):
    """``embeddings`` (N, D); ``triplets`` (M, 3) rows of indices into it; ``types`` (M,)
    0/1/2 for one/two/three-class. Returns accuracy overall and per type, with counts."""
    correct = triplet_correct(embeddings, triplets)
    types = torch.as_tensor(types, dtype=torch.long)
    if len(types) != len(correct):
        raise ValueError(f"{len(correct)} triplets but {len(types)} types")
    results = {"accuracy": _acc(correct), "count": int(len(correct)), "per_type": {}}
    for t, name in enumerate(TRIPLET_TYPES):
        sel = correct[types == t]
        results["per_type"][name] = {"accuracy": _acc(sel), "count": int(len(sel))}
    return results


def _acc(correct):
    return float(correct.double().mean()) if len(correct) else float("nan")


class TripletEvaluator:
    """Turns the embeddings of a triplet dataset's unique faces (gathered by index)
    into triplet accuracy (one embedding per face, however many triplets use it); on synthetic data also the true-expression ceiling."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, predictions):
        """``predictions["embedding"]``: (N, D), row i the embedding of face i."""
        ds = self.dataset
        emb = predictions["embedding"]
        results = evaluate_triplets(emb, ds.triplets, ds.types)
        results["images_embedded"] = int(ds.num_faces)
        if ds.expression_vectors is not None:
            results["ceiling"] = evaluate_triplets(torch.as_tensor(ds.expression_vectors), ds.triplets, ds.types)
        return results

    @staticmethod
    def summary(results):
        def line(r):
            parts = [f"{100 * r['accuracy']:.2f}% of {r['count']}"]
            for name, v in r["per_type"].items():
                parts.append(f"{name.split('_')[0].lower()}-class {100 * v['accuracy']:.2f}% of {v['count']}")
            return "; ".join(parts)

        text = f"triplet accuracy: {line(results)}"
        if "ceiling" in results:
            text += f"\n  true-expression ceiling: {line(results['ceiling'])}"
        return text
