"""Attribution maps and how well they agree with a mask: the paper's Section 4, as functions of a model and images.

    saliency s = |d y1 / dx|            (input gradients, the paper's figures and tables)
              or |IG(x)|                (integrated gradients, zero baseline, 200 steps)
              or |y1(x) - y1(x, patch zeroed)|   (occlusion, window = stride = 2 px at 28, 15 px at 224)
    smoothed     g = Gaussian(s, sigma=1)
    binarised    A = the k highest pixels of g, k = |B| (the mask's size)
    scores       IoU = |A n B| / |A u B|,  IoP = |A n B| / |A|,  IoT = |A n B| / |B|
    chance       E[IoU] of a random top-k map: A a uniform k-subset of the N pixels, so
                 I = |A n B| is hypergeometric and E[IoU] = sum_i P(I = i) i / (2k - i); exact

Everything is batched: one backward per batch for gradients, steps x images
in chunks for integrated gradients, patches x images in chunks of forward
passes for occlusion, a depthwise convolution for the blur and one stable
sort for top-k. IG and occlusion return signed attributions; like the
gradient, they are scored by their absolute value (a large change of the
logit either way is what "the model looks here" means).

Any model whose forward returns logits (B, 2) works; y1 is the class-1
(positive) logit. saliency.py scores a trained run with these functions
(which images, the untrained and cascade baselines, the saved maps, the CLI).
"""
import torch
import torch.nn.functional as F

TARGET = 1         # the class whose logit is explained: the positive class
IG_PIXELS = 2**18  # pixels per IG / occlusion chunk: 334 images at 28x28, 5 at 224x224
IG_STEPS = 200     # the authors' integrated-gradients steps
OCCLUSION_WINDOW = 15  # the authors' patch side (= stride) at 224x224; scaled with the image elsewhere


# ------------------------------------------------------------------ attribution methods

def _logit_gradient(model, x):
    """d logit_1 / dx for every image of x in ONE backward pass.  (B, C, H, W)

    In eval mode each image's logit depends only on that image (batch norm
    uses running statistics), so the gradient of the batch sum is the stack of
    per-image gradients. Only x requires a gradient: autograd then skips the
    weight gradients.
    """
    with torch.enable_grad():  # callers may be inside no_grad
        x = x.detach().requires_grad_(True)
        logit = model(x)[:, TARGET]  # (B,)
        (grad,) = torch.autograd.grad(logit.sum(), x)
    return grad


class _EvalMode:
    """Put a model in eval mode for a block and restore its train/eval mode afterwards."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def input_gradients(model, x):
    """|d y1 / dx|: the absolute gradient of the class-1 logit w.r.t. the input.  (B, 1, H, W)"""
    with _EvalMode(model):
        return _logit_gradient(model, x).abs()


def integrated_gradients(model, x, steps=IG_STEPS, chunk_pixels=IG_PIXELS):
    """IG_i = (x_i - 0) * 1/m sum_k d y1(a_k x) / dx_i, with midpoints a_k = (k - 1/2) / m.  (B, 1, H, W)

    Signed attributions with a zero baseline; they satisfy completeness,
    sum_i IG_i ~= y1(x) - y1(0), up to the midpoint rule's error. The
    m x B interpolated images are never built at once: each chunk of at most
    ``chunk_pixels`` pixels takes a slice of the flat (step, image) index, and
    its gradients are summed back into their images with index_add.
    """
    b = len(x)
    alphas = (torch.arange(steps, device=x.device, dtype=x.dtype) + 0.5) / steps  # (m,)
    total = torch.zeros_like(x)                                                    # (B, C, H, W)
    rows = max(1, chunk_pixels // x[0].numel())
    with _EvalMode(model):
        for start in range(0, steps * b, rows):
            flat = torch.arange(start, min(start + rows, steps * b), device=x.device)  # (R,)
            img = flat % b
            points = alphas[flat // b].view(-1, 1, 1, 1) * x[img]                      # (R, C, H, W)
            total.index_add_(0, img, _logit_gradient(model, points))
    return x * total / steps


def occlusion_window(size):
    """The occluding patch's side for images of side `size`: 15 px at 224, scaled linearly, at least 1.

    round(15 * size / 224) is the authors' 2 px at 28 and 15 px at 224 from one rule.
    """
    return max(1, round(OCCLUSION_WINDOW * size / 224))


def occlusion(model, x, window=None, chunk_pixels=IG_PIXELS):
    """O_i = y1(x) - y1(x with the patch holding pixel i set to 0), signed.  (B, C, H, W)

    The zero patch is window x window (default `occlusion_window` of the
    shorter side) and slides with stride = window, so the patches tile the
    image and every pixel gets the drop of the one patch that holds it. When
    the side is not a multiple of the window (224 = 14 x 15 + 14), the last
    row and column of patches are clipped at the border (14 px there) instead
    of being left out, so no pixel is left unscored. A patch zeroes every channel.

    The P x B occluded copies, plus each image itself as copy P (whose patch
    matches no pixel), are never built at once: as in integrated_gradients,
    each chunk of at most ``chunk_pixels`` pixels takes a slice of the flat
    (copy, image) index and goes through one forward pass, without gradients.
    """
    b, _, h, w = x.shape
    window = window or occlusion_window(min(h, w))
    rows_of, cols_of = torch.arange(h, device=x.device) // window, torch.arange(w, device=x.device) // window
    patch = rows_of[:, None] * (int(cols_of[-1]) + 1) + cols_of[None, :]  # (H, W): row-major patch index
    copies = int(patch[-1, -1]) + 2                                        # P patches + the unoccluded image
    chunk = max(1, chunk_pixels // x[0].numel())
    logits = []
    with _EvalMode(model), torch.no_grad():
        for start in range(0, copies * b, chunk):
            flat = torch.arange(start, min(start + chunk, copies * b), device=x.device)  # (R,)
            img = flat % b
            hidden = patch == (flat // b).view(-1, 1, 1, 1)                              # (R, 1, H, W)
            logits.append(model(x[img].masked_fill(hidden, 0))[:, TARGET])               # (R,)
    logits = torch.cat(logits).view(copies, b)                                           # (P + 1, B)
    drops = logits[-1] - logits[:-1]                                                     # (P, B)
    return drops.T[:, patch].unsqueeze(1).expand_as(x).contiguous()                      # (B, C, H, W)


SALIENCY = {"grad": input_gradients, "ig": integrated_gradients, "occlusion": occlusion}


# ------------------------------------------------------------------ post-processing

def _gaussian_kernel(sigma, dtype, device, truncate=4.0):
    """The normalised 1-D Gaussian exp(-t^2 / 2 sigma^2), |t| <= truncate * sigma (scipy's radius)."""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def smooth(s, sigma=1.0):
    """Per-image Gaussian blur G_sigma * s (the paper: sigma = 1), batched.  (B, C, H, W)

    Separable: one depthwise convolution along rows, one along columns. Edges
    are mirrored (scipy's mode="mirror") rather than zero-padded, so pixels
    near the border are not pushed down the top-k ranking.
    """
    if sigma <= 0:
        return s
    c = s.shape[1]
    k = _gaussian_kernel(sigma, s.dtype, s.device)
    r = len(k) // 2
    if r >= min(s.shape[-2:]):
        raise ValueError(f"sigma {sigma} is too large for {tuple(s.shape[-2:])} images")
    s = F.pad(s, (r, r, r, r), mode="reflect")
    s = F.conv2d(s, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along rows (H)
    return F.conv2d(s, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along columns (W)


def binarize_top_k(s, mask):
    """A = 1 on each image's k highest pixels of s, k = |B| = that image's mask size.  (B, 1, H, W)

    A stable descending sort breaks ties by flat index (the earlier pixel
    wins), so exactly k pixels are set even on a constant map.
    """
    flat = s.flatten(1)                                              # (B, N)
    k = (mask.flatten(1) > 0).sum(1)                                 # (B,)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices  # (B, N)
    ranks = torch.arange(flat.shape[1], device=s.device).expand_as(flat)
    keep = (ranks < k[:, None]).to(s.dtype)                          # (B, N): 1 for the first k ranks
    return torch.zeros_like(flat).scatter_(1, order, keep).view_as(s)


def localisation(s, mask):
    """Per image IoU = |A n B| / |A u B|, IoP = |A n B| / |A|, IoT = |A n B| / |B|.

    A = s > 0 (a binarised saliency map), B = mask > 0. Images with an empty
    mask have no ground truth and are left out. Returns ({"iou", "iop",
    "iot"} -> (n,) tensors for the n images with a mask, number left out).
    An empty A (all-zero saliency) scores IoP = 0 rather than 0/0.
    """
    a, b = s.flatten(1) > 0, mask.flatten(1) > 0     # (B, N)
    inter = (a & b).sum(1).double()                  # (B,)
    union = (a | b).sum(1).double()
    size_a, size_b = a.sum(1).double(), b.sum(1).double()
    keep = size_b > 0
    scores = {"iou": inter / union.clamp_min(1), "iop": inter / size_a.clamp_min(1),
              "iot": inter / size_b.clamp_min(1)}
    return {k: v[keep] for k, v in scores.items()}, int((~keep).sum())


def top_k_localisation(s, mask, sigma=1.0):
    """`localisation` of s's top-k pixels after smoothing: smooth(sigma) -> binarize_top_k -> localisation.

    The scoring chain after the abs (sigma 0: no smoothing), shared with the
    check script that tries other ways of scoring the raw attribution
    (python -m checks.scoring_variants).
    """
    return localisation(binarize_top_k(smooth(s, sigma), mask), mask)


def map_measures(g, mask, box=None):
    """Where a map's mass lies, before any binarising, per image.  ({name: (n,)}, number of zero maps)

    g is the map IoU binarises (|saliency| smoothed); mask the expert mask;
    box (synthetic only) the confounder's pixels, which never include a cross
    pixel. outside_mass = share of g's total outside the mask, box_mass = share
    on the box, pointing = 1 if g's maximum (the first, in row-major order) lies
    inside the mask. A map that is zero everywhere has no mass and no maximum:
    it is left out (and counted) rather than scored.
    """
    flat, inside = g.flatten(1).double(), mask.flatten(1) > 0            # (B, N)
    total = flat.sum(1)                                                  # (B,)
    keep = (total > 0) & inside.any(1)
    out = {"outside_mass": (flat * ~inside).sum(1) / total.clamp_min(1e-300),
           "pointing": inside.gather(1, flat.argmax(1, keepdim=True)).squeeze(1).double()}
    if box is not None:
        out["box_mass"] = (flat * box.flatten(1)).sum(1) / total.clamp_min(1e-300)
    return {k: v[keep] for k, v in out.items()}, int((~keep & inside.any(1)).sum())


def top_half(s):
    """Per image: |s| smoothed (sigma = 1), values above its median kept, the rest 0.  (B, H, W)"""
    g = smooth(s.abs()).sum(1)                          # (B, H, W): channels summed (one for our images)
    median = torch.quantile(g.flatten(1), 0.5, dim=1)   # (B,)
    return torch.where(g > median.view(-1, 1, 1), g, torch.zeros_like(g))


def mean_map(s):
    """The figures' map: mean over images of smooth(|s|) kept above each image's 50th percentile.  (H, W)"""
    return top_half(s).mean(0)


# ------------------------------------------------------------------ chance: what an IoU is worth

def _log_binomial(n, k):
    """log C(n, k) for float64 tensors (lgamma; -inf or nan where k < 0 or k > n, masked by callers)."""
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)


def chance_iou(mask):
    """Per image, the expected IoU of a random top-k map against the mask, k = |B|.  (n,)

    A random top-k map is a uniform k-subset A of the N pixels. Its overlap
    I = |A n B| with the mask is hypergeometric (N pixels, |B| = k marked, k
    drawn), and |A u B| = 2k - I, so E[IoU] = sum_i P(I = i) i / (2k - i),
    summed exactly from log-binomials in float64, all images at once (rows
    are padded to the largest mask; overlaps a mask cannot have get P = 0).
    As in `localisation`, images with an empty mask are left out.
    """
    b = mask.flatten(1) > 0                                                   # (B, N)
    k = b.sum(1)[b.any(1)].double()[:, None]                                  # (n, 1)
    n = torch.full_like(k, b.shape[1])                                        # (n, 1): float64, as lgamma needs
    i = torch.arange(int(k.max()) + 1 if len(k) else 1, dtype=torch.float64, device=mask.device)  # (K + 1,)
    log_p = _log_binomial(k, i) + _log_binomial(n - k, k - i) - _log_binomial(n, k)  # (n, K + 1)
    possible = (i <= k) & (k - i <= n - k)  # at most k overlaps, and the k - i misses must fit outside
    return torch.where(possible, log_p.exp() * i / (2 * k - i), 0.0).sum(1)
