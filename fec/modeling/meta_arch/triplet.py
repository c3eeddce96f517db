"""The FEC expression embedding: backbone + embedding head, trained on triplets."""
import torch

from .. import backbone as _backbones  # noqa: F401  (registers the backbones)
from .. import heads as _heads  # noqa: F401  (registers the heads)
from ..losses import triplet_loss
from ..registry import BACKBONES, HEADS, META_ARCHITECTURES
from .base import RawPixelModel


class TripletEmbeddingNet(RawPixelModel):
    """Images arrive as uint8 (N, 3, H, W) RGB and are normalised here, so the data
    pipeline and exported models deal in raw pixels.

    Train mode: ``forward({"images": (B, 3, 3, H, W) uint8, "type": (B,) int64})`` →
    ``{"loss_triplet": scalar}``; faces ordered a, b, c with (a, b) the similar pair.
    Eval mode: ``forward({"image": (N, 3, H, W) uint8})`` → ``{"embedding": (N, D)}``.
    """

    output_keys = ("embedding",)

    def __init__(self, backbone, head, pixel_mean, pixel_std, margins):
        super().__init__(pixel_mean, pixel_std)
        self.backbone = backbone
        self.head = head
        self.register_buffer("margins", torch.tensor([float(m) for m in margins]), persistent=False)

    def embed(self, images):
        """(N, 3, H, W) uint8 images (any device) → (N, D) unit-norm embeddings."""
        return self.head(self.backbone(self.normalize(images)))

    def predict(self, images):
        return {"embedding": self.embed(images)}

    def losses(self, batch):
        images = batch["images"]
        if images.dim() != 5 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, 3, H, W) triplet images, got {tuple(images.shape)}")
        num = images.shape[0]
        # One backbone pass over all 3B faces: BatchNorm sees the whole batch.
        emb = self.embed(images.reshape(num * 3, *images.shape[2:])).view(num, 3, -1)
        types = torch.as_tensor(batch["type"]).to(self.device, non_blocking=True)
        loss = triplet_loss(emb[:, 0], emb[:, 1], emb[:, 2], types, self.margins)
        return {"loss_triplet": loss}


@META_ARCHITECTURES.register("TripletEmbeddingNet")
def build_triplet_embedding_net(cfg):
    backbone = BACKBONES[cfg.MODEL.BACKBONE.NAME](cfg)
    head = HEADS[cfg.MODEL.HEAD.NAME](cfg, backbone.out_channels)
    return TripletEmbeddingNet(
        backbone,
        head,
        list(cfg.MODEL.PIXEL_MEAN) or backbone.pixel_mean,
        list(cfg.MODEL.PIXEL_STD) or backbone.pixel_std,
        cfg.MODEL.LOSS.MARGINS,
    )
