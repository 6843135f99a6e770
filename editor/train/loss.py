"""StyleGAN2-ADA losses: non-saturating logistic loss, lazy R1, path-length regularisation, style mixing.

Four phases, each with its own optimiser step (as in the StyleGAN2 paper's lazy regularisation):
  'Gmain'  softplus(-D(aug(G(z))))                                      every iteration
  'Greg'   pl_weight * (|J_w^T y| - a)^2 on batch/pl_batch_shrink        every G_reg_interval iterations
  'Dmain'  softplus(D(aug(G(z)))) + softplus(-D(aug(x)))                every iteration
  'Dreg'   r1_gamma / 2 * |grad_x D(aug(x))|^2                             every D_reg_interval iterations
Regularisation phases are multiplied by their interval (`gain`) so that their average strength is unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["StyleGAN2Loss"]


class StyleGAN2Loss:
    """Computes one phase's loss and back-propagates it (gradients accumulate in the networks' .grad)."""

    def __init__(self, G, D, augment=None, r1_gamma: float = 1.0, style_mixing: float = 0.9, pl_weight: float = 0.0,
                 pl_batch_shrink: int = 2, pl_decay: float = 0.01, fuse_d: bool = True):
        if r1_gamma < 0 or pl_weight < 0:
            raise ValueError("r1_gamma and pl_weight must be >= 0")
        if not 0 <= style_mixing <= 1:
            raise ValueError(f"style_mixing must be a probability, got {style_mixing}")
        self.G, self.D, self.augment = G, D, augment
        self.r1_gamma = r1_gamma
        self.style_mixing = style_mixing
        self.pl_weight = pl_weight
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.fuse_d = fuse_d  # one D pass over fakes and reals in the Dmain phase (see run_D_pair)
        self.pl_mean = torch.zeros([], device=next(G.parameters()).device)  # running mean of path lengths

    # -- network calls
    def run_G(self, z: torch.Tensor, update_emas: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """z [N, z_dim] -> (images [N, C, H, W], ws [N, num_ws, w_dim]) with style mixing and random noise."""
        ws = self.G.mapping(z, None, update_emas=update_emas)  # [N, num_ws, w_dim]
        if self.style_mixing > 0:
            num_ws = ws.shape[1]
            # one crossover point for the whole batch, used with probability style_mixing (as the reference does)
            # drawn from the CPU generator: no device round trip per call
            cutoff = int(torch.randint(1, num_ws, [])) if num_ws > 1 else num_ws
            if float(torch.rand([])) >= self.style_mixing:
                cutoff = num_ws
            if cutoff < num_ws:
                ws2 = self.G.mapping(torch.randn_like(z), None, update_emas=False)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        img = self.G.synthesis(ws, noise_mode="random")
        return img, ws

    def run_D(self, img: torch.Tensor) -> torch.Tensor:
        if self.augment is not None:
            img = self.augment(img)
        return self.D(img)  # [N, 1]

    def run_D_pair(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D logits of fakes and reals ([N, 1] each) from one batched pass when `fuse_d` is on.

        The two halves are interleaved so that every minibatch-std group holds only fakes or only reals, exactly the
        groups two separate calls would form; D has no other cross-sample operation, so the logits are those of two
        separate calls (up to summation order) for half the calls.
        """
        n = fake.shape[0]
        g = self.D.b4.mbstd.group_size if getattr(self.D.b4, "mbstd", None) is not None else None
        g = min(g, n) if g else n
        if not self.fuse_d or real.shape[0] != n or n % g:
            return self.run_D(fake), self.run_D(real)
        if self.augment is not None:
            fake, real = self.augment(fake), self.augment(real)
        both = torch.stack([fake.reshape(g, n // g, *fake.shape[1:]), real.reshape(g, n // g, *real.shape[1:])], 1)
        logits = self.D(both.reshape(2 * n, *fake.shape[1:]))  # [2N, 1], groups: (fake|real) per column
        logits = logits.reshape(g, 2, n // g, 1)
        return logits[:, 0].reshape(n, 1), logits[:, 1].reshape(n, 1)

    # -- phases
    def accumulate_gradients(self, phase: str, real_img: torch.Tensor | None, gen_z: torch.Tensor,
                             gain: float = 1.0) -> dict[str, torch.Tensor]:
        """Back-propagate one phase's loss times `gain`; returns detached statistics for logging.

        real_img: [N, C, H, W] float in [-1, 1] (unused by the G phases); gen_z: [N, z_dim].
        """
        stats: dict[str, torch.Tensor] = {}
        if phase == "Gmain":
            img, _ = self.run_G(gen_z)
            logits = self.run_D(img)
            loss = F.softplus(-logits)  # -log(sigmoid(logits))
            loss.mean().mul(gain).backward()
            stats["loss_G"] = loss.detach().mean()
            stats["scores_fake"] = logits.detach().mean()
        elif phase == "Greg":
            if self.pl_weight == 0:
                return stats
            n = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
            img, ws = self.run_G(gen_z[:n])
            noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
            (grads,) = torch.autograd.grad(outputs=[(img * noise).sum()], inputs=[ws], create_graph=True)
            lengths = grads.square().sum(2).mean(1).sqrt()  # [n]
            pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay)
            self.pl_mean.copy_(pl_mean)
            penalty = (lengths - pl_mean).square()
            # the img term keeps every synthesis parameter in the graph (zero contribution)
            (img[:, 0, 0, 0] * 0 + penalty * self.pl_weight).mean().mul(gain).backward()
            stats["pl_penalty"] = penalty.detach().mean()
        elif phase == "Dmain":
            with torch.no_grad():
                img, _ = self.run_G(gen_z, update_emas=True)
            fake_logits, real_logits = self.run_D_pair(img, real_img)
            loss_fake = F.softplus(fake_logits)  # -log(1 - sigmoid(fake))
            loss_real = F.softplus(-real_logits)  # -log(sigmoid(real))
            (loss_fake.mean() + loss_real.mean()).mul(gain).backward()
            stats["loss_D"] = (loss_fake + loss_real).detach().mean()
            stats["scores_real"] = real_logits.detach().mean()
            stats["real_logits"] = real_logits.detach()
        elif phase == "Dreg":
            if self.r1_gamma == 0:
                return stats
            x = real_img.detach().requires_grad_(True)
            logits = self.run_D(x)
            (grads,) = torch.autograd.grad(outputs=[logits.sum()], inputs=[x], create_graph=True)
            penalty = grads.square().sum([1, 2, 3])  # [N]
            (logits[:, 0] * 0 + penalty * (self.r1_gamma / 2)).mean().mul(gain).backward()
            stats["r1_penalty"] = penalty.detach().mean()
        else:
            raise ValueError(f"unknown phase {phase!r}; expected Gmain, Greg, Dmain or Dreg")
        return stats
