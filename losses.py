"""The six training methods of the paper's Section 3, one entry point each.

Every method has the same signature::

    method(net, x, y, mask, hp) -> (loss, terms)

``x`` (B, 1, H, W) images, ``y`` (B,) labels, ``mask`` (B, 1, H, W) with 1 on
the expert-marked pixels; ``hp`` holds the hyperparameters (``lam``,
``mask_fill``, ...). ``loss`` is the scalar the encoder/classifier optimiser
minimises (``None`` when it should not step on this batch) and ``terms`` a
dict of detached scalars for logging (``ce`` and, for the priors, ``penalty``).

"Outside" means the pixels where the mask is 0. An image whose mask is all
zeros carries no annotation (the RSNA negatives, for example): with
``--empty-mask skip`` it is never masked and gets no penalty, exactly as if its
mask covered the whole image; with ``penalize`` (the release's, rsna's
default) every pixel of it is outside (``outside``).

``METHODS`` lists the methods in the paper's table order. Only ``adversarial``
owns state (its discriminator and that discriminator's optimiser), so it is a
class; ``build(name, hp, device)`` returns a ready callable for any name.
"""
import torch
import torch.nn.functional as F

from models import Discriminator


def adam(params, lr):
    """Adam as every optimiser here builds it: fused (one kernel for all parameters) on CPU and CUDA.

    PyTorch's default on CPU loops over the parameter tensors; for the ResNet-18
    that costs 30 ms a step on this project's 2-core CPU, 12% of a training step,
    against 6 ms fused. Same update rule, so the same results up to rounding.
    """
    params = list(params)
    return torch.optim.Adam(params, lr=lr, fused=params[0].device.type in ("cpu", "cuda") or None)


def outside(mask, empty="skip"):
    """1 on the pixels to mask/penalise: mask == 0, in images that have a mask at all.  (B, 1, H, W)

    ``empty="penalize"`` instead treats an all-zero mask as "everything is
    outside", as the authors' released code did; on RSNA that leaks the label,
    because only positive images have boxes.
    """
    if empty == "penalize":
        return (mask == 0).to(mask.dtype)
    annotated = mask.flatten(1).amax(1) > 0                  # (B,)
    return ((mask == 0) & annotated.view(-1, 1, 1, 1)).to(mask.dtype)


def shuffle_outside(x, mask, empty="skip", generator=None):
    """Each image's outside pixels randomly permuted among themselves; inside pixels unchanged.

    Vectorised over the batch: random keys put every image's outside pixels
    first in a random order, and a stable sort lists the same positions in
    index order; scattering one onto the other permutes only outside pixels.
    """
    flat = x.flatten(1)                                      # (B, N)
    out = outside(mask, empty).expand_as(x).flatten(1).bool()  # (B, N)
    n = flat.shape[1]
    index = torch.arange(n, device=x.device, dtype=torch.float32) / n
    keys = torch.rand(flat.shape, device=x.device, generator=generator)
    keys = torch.where(out, keys, 2.0 + index)              # inside pixels sort last, in order
    source = keys.argsort(dim=1)                            # outside positions in random order
    target = torch.where(out, index, 2.0 + index).argsort(dim=1)  # the same positions in order
    shuffled = flat.scatter(1, target, flat.gather(1, source))
    return shuffled.view_as(x)


def apply_mask(x, mask, hp, fill="shuffle"):
    """The masked input: outside pixels shuffled (the paper's text) or set to zero (its tables' 'Masked')."""
    if fill == "zero":
        return x * (1 - outside(mask, hp.empty_mask))
    return shuffle_outside(x, mask, hp.empty_mask)


def _ce(net, x, y):
    z, logits = net.features_and_logits(x)
    return z, F.cross_entropy(logits, y)


def baseline(net, x, y, mask, hp):
    """Plain cross-entropy; the mask is ignored."""
    _, ce = _ce(net, x, y)
    return ce, {"ce": ce.detach()}


def masked(net, x, y, mask, hp):
    """Cross-entropy on the masked input (``hp.mask_fill``); evaluation still sees unmasked images."""
    _, ce = _ce(net, apply_mask(x, mask, hp, hp.mask_fill), y)
    return ce, {"ce": ce.detach()}


def actdiff(net, x, y, mask, hp):
    """Eq. 1: CE(x) + lam * mean_b || f(masked x_b) - f(x_b) ||_2 on the 512-d pooled features.

    The released code never multiplied this term by lambda, so the paper's runs
    effectively used lam = 1; that is our default.
    """
    z, ce = _ce(net, x, y)
    z_masked, _ = net.features_and_logits(apply_mask(x, mask, hp))
    penalty = torch.linalg.vector_norm(z_masked - z, dim=1).mean()  # its gradient at 0 is 0, not NaN
    return ce + hp.lam * penalty, {"ce": ce.detach(), "penalty": penalty.detach()}


def gradmask(net, x, y, mask, hp):
    """Eq. 5: CE + lam * sum over outside pixels (and the batch) of |d|y0 - y1| / dx|.

    L1 of the input gradient as the released code did; ``create_graph`` makes
    the penalty itself differentiable so it trains the weights.
    """
    x = x.detach().requires_grad_(True)
    _, logits = net.features_and_logits(x)
    ce = F.cross_entropy(logits, y)
    margin = (logits[:, 0] - logits[:, 1]).abs().sum()
    grad, = torch.autograd.grad(margin, x, create_graph=True)  # (B, 1, H, W)
    penalty = (grad.abs() * outside(mask, hp.empty_mask)).sum()
    return ce + hp.lam * penalty, {"ce": ce.detach(), "penalty": penalty.detach()}


def rrr(net, x, y, mask, hp):
    """Eq. 4 (Right for the Right Reasons): CE + lam * sum over outside pixels (and the batch)
    of (d sum_k log p_k / dx)^2, with ``create_graph`` as in gradmask.
    """
    x = x.detach().requires_grad_(True)
    _, logits = net.features_and_logits(x)
    ce = F.cross_entropy(logits, y)
    grad, = torch.autograd.grad(F.log_softmax(logits, 1).sum(), x, create_graph=True)
    penalty = (grad.square() * outside(mask, hp.empty_mask)).sum()
    return ce + hp.lam * penalty, {"ce": ce.detach(), "penalty": penalty.detach()}


class Adversarial:
    """Eqs. 2-3: a discriminator D tells features of masked inputs (label 1) from unmasked ones (0).

    Owns D and D's own Adam (``hp.disc_lr``): D takes a step on every batch, on
    detached features, so its optimiser never touches the encoder. On every
    ``hp.disc_ratio``-th batch the encoder and classifier get CE + lam * the
    fooling loss (D's loss with the labels flipped); on the other batches the
    call returns loss ``None`` and the training loop does not step them.
    """

    def __init__(self, hp, device):
        self.disc = Discriminator().to(device)
        self.opt = adam(self.disc.parameters(), hp.disc_lr)
        self.batches = 0

    def _disc_loss(self, z_masked, z, flip=False):
        """Eq. 2, a sum of two expectations: E[-log D(z_masked)] + E[-log(1 - D(z))], each a batch mean.

        ``flip`` swaps the two targets: the encoder's fooling term of eq. 3. A single mean over
        the concatenated batch would be half of this, so lam would act at half its paper value.
        One pass of D over both halves (its spectral norm iterates once per call).
        """
        d_masked, d = self.disc(torch.cat([z_masked, z])).split([len(z_masked), len(z)])
        masked_target = 0.0 if flip else 1.0  # built on the device: no host-to-device copy per batch
        return (F.binary_cross_entropy_with_logits(d_masked, torch.full_like(d_masked, masked_target))
                + F.binary_cross_entropy_with_logits(d, torch.full_like(d, 1.0 - masked_target)))

    def __call__(self, net, x, y, mask, hp):
        encoder_turn = self.batches % hp.disc_ratio == 0
        self.batches += 1
        with torch.set_grad_enabled(encoder_turn):  # no encoder graph when it will not step
            z, logits = net.features_and_logits(x)
            z_masked, _ = net.features_and_logits(apply_mask(x, mask, hp))
        self.disc.train()
        d_loss = self._disc_loss(z_masked.detach(), z.detach())
        self.opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt.step()
        terms = {"disc": d_loss.detach()}
        if not encoder_turn:
            return None, terms
        ce = F.cross_entropy(logits, y)
        fool = self._disc_loss(z_masked, z, flip=True)
        return ce + hp.lam * fool, dict(terms, ce=ce.detach(), penalty=fool.detach())

    def state_dict(self):
        return {"disc": self.disc.state_dict(), "opt": self.opt.state_dict(), "batches": self.batches}

    def load_state_dict(self, state):
        self.disc.load_state_dict(state["disc"])
        self.opt.load_state_dict(state["opt"])
        self.batches = state["batches"]


METHODS = {
    "baseline": baseline,
    "masked": masked,
    "actdiff": actdiff,
    "adversarial": Adversarial,
    "gradmask": gradmask,
    "rrr": rrr,
}


def build(name, hp, device):
    """The callable for method `name` (instantiating the adversarial method's state)."""
    method = METHODS[name]
    return method(hp, device) if isinstance(method, type) else method
