"""The two AnytimeCL models over one frozen open_clip ViT: the original (frozen CLIP) and the tuned model
that shares the frozen encoder up to the last image block and trains only a copy of that block (plus the
"other" bias). Label embeddings are the original text encoder's and stay fixed."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..models import CheckpointError

__all__ = ["CheckpointError", "SplitCLIP", "other_loss", "tuned_probabilities"]


class SplitCLIP(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        visual = clip.visual
        blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
        if blocks is None or len(blocks) < 2 or getattr(visual, "attn_pool", None) is not None:
            raise CheckpointError("AnytimeCL needs an open_clip ViT image tower with at least two blocks and "
                                  "token pooling (no attentional pooler)")
        if not getattr(visual.transformer, "batch_first", True):
            raise CheckpointError("AnytimeCL needs a batch-first open_clip transformer")
        self.clip = clip
        for p in clip.parameters():
            p.requires_grad_(False)
        clip.eval()
        self.tuned_block = copy.deepcopy(blocks[-1])
        for p in self.tuned_block.parameters():
            p.requires_grad_(True)
        self.other_bias = torch.nn.Parameter(torch.zeros(()))  # the "none of the above" logit

    @property
    def original_block(self):
        return self.clip.visual.transformer.resblocks[-1]

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp().detach()

    def trainable_state(self) -> dict:
        return {"tuned_block": self.tuned_block.state_dict(), "other_bias": self.other_bias.detach().clone()}

    def load_trainable_state(self, d: dict) -> None:
        self.tuned_block.load_state_dict(d["tuned_block"])
        with torch.no_grad():
            self.other_bias.copy_(d["other_bias"])

    @torch.no_grad()
    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> the tokens (CLS + patches) that enter the last block, (B, L, D)."""
        visual = self.clip.visual
        x = visual._embeds(images)
        for blk in visual.transformer.resblocks[:-1]:
            x = blk(x)
        return x

    @torch.no_grad()
    def cls_attention(self, tokens: torch.Tensor) -> torch.Tensor:
        """How much CLS attends to each token in the (original) last block, averaged over heads: (B, L)."""
        blk = self.original_block
        x = blk.ln_1(tokens)
        _, w = blk.attn(x, x, x, need_weights=True, average_attn_weights=True)
        return w[:, 0, :]

    def _head(self, block, tokens: torch.Tensor) -> torch.Tensor:
        visual = self.clip.visual
        pooled, _ = visual._pool(block(tokens))
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return F.normalize(pooled, dim=-1)

    def tuned_features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._head(self.tuned_block, tokens)

    @torch.no_grad()
    def original_features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._head(self.original_block, tokens)


def other_loss(logits: torch.Tensor, other_logit: torch.Tensor, target: torch.Tensor,
               weight: float = 0.1) -> torch.Tensor:
    """Cross-entropy over [candidates, other] with the true label as target, plus `weight` times the
    cross-entropy over the candidates without the true label, plus other, with "other" as target.
    logits (B, C) over the candidates, target (B,) column indices into them.

    The calibration term's weight is AnytimeCL's own, 0.1 (`jessemelpolio/AnytimeCL`,
    `models/losses.py` OpenSetCrossEntropyLossWithOtherLogit and `options/base_options.py`
    `--other_class_calibration_loss_weight`, which every script of the release passes as 0.1). At weight 1
    the term pushes every wrong label below "other" as hard as the first pushes the true one up, and on the
    sample web's Net stream the tuned model fell 9 points below plain cross-entropy."""
    b, c = logits.shape
    other = other_logit.expand(b, 1)
    with_other = torch.cat([logits, other], dim=1)
    first = F.cross_entropy(with_other, target)
    masked = with_other.masked_fill(F.one_hot(target, c + 1).bool(), float("-inf"))
    second = F.cross_entropy(masked, torch.full_like(target, c))
    return first + weight * second


def tuned_probabilities(logits: torch.Tensor, other_logit: torch.Tensor | None) -> torch.Tensor:
    """P_t(y|x) over the candidates; with an "other" option its share of the mass is left out, so the
    candidate probabilities sum to 1 - P_t(other|x)."""
    if other_logit is None:
        return logits.softmax(dim=1)
    full = torch.cat([logits, other_logit.expand(len(logits), 1)], dim=1).softmax(dim=1)
    return full[:, :-1]
