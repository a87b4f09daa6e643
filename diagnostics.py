"""Does a model use the shortcut? The ground truth on synthetic, and checks a practitioner can run anywhere.

On the synthetic task the shortcut is known: the box, bottom-left for class 0
and bottom-right for class 1 in training, reversed in test. Moving it and
watching the output tells whether a model reads it, without any saliency map:

    box_effect            mean_i |p(x_i, box right) - p(x_i, box left)|, p = softmax(logits)[1]
    test_auc_nobox        test AUC with the box removed (its pixels background, except cross pixels)
    test_auc_train_rule   test AUC with every box moved to where the training rule puts it for its class

A model that reads the box scores about 1 on test_auc_train_rule and about 0
on the test split itself, so the AUC swing test_auc_train_rule - test_auc is
a rank-based label of shortcut use; box_effect is the confidence-weighted
measure beside it. Both copies of box_effect keep every cross pixel as it is.

What a practitioner can compute with the expert masks and no saliency at all,
on every dataset (fill 0 in the normalised input, as Masked's zero fill):

    test_auc_masked_input  test AUC with every pixel outside each image's mask set to 0; blank unless every
                           test image has a mask (filling only the annotated class would leak the label)
    mask_effect            mean over the test images with a mask of |p(x_i) - p(x_i masked)|

On synthetic the box is the only lit pixel outside the cross mask, so masking
the input removes exactly the box: test_auc_masked_input = test_auc_nobox.

All of it is forward passes in fp32 (like saliency, whatever precision the run
trained in), batched, with one copy to the host at the end. ``auc`` is the
AUC every evaluation of the project uses, and ``log_softmax`` the float64
score it ranks by (train.py's test_auc too).
"""
import numpy as np
import torch

import datasets

SHORTCUT_COLUMNS = ("box_effect", "test_auc_nobox", "test_auc_train_rule", "test_auc_masked_input", "mask_effect")


def auc(scores, labels):
    """Area under the ROC curve = P(a positive scores above a negative), ties counting one half:
    the Mann-Whitney U statistic from average ranks. (Here rather than scikit-learn's, whose
    import costs every run about a second; tests check the two agree.)"""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based ranks, tied scores share their mean
    positive = labels == 1
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # undefined with one class; train.check_splits refuses such splits
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_softmax(logits):
    """log p of each class, in float64, from (N, 2) logits (numpy): what every AUC here ranks by. A float32
    softmax rounds p to exactly 1.0 once the logit gap passes about 17, and so ties confident images."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits - np.logaddexp(logits[:, :1], logits[:, 1:])


def box_variants(x, mask, y):
    """The synthetic test images with their box moved: {"left", "right", "train_rule", "nobox"} -> (B, 1, H, W).

    Cross pixels (the undilated mask) keep their value; every other pixel is
    the background 0 except the box drawn where the variant puts it: bottom-left,
    bottom-right, the training rule's side for the image's class (1 -> right),
    or nowhere.
    """
    crosses = mask > 0
    fg = x.amax((1, 2, 3), keepdim=True)                     # (B, 1, 1, 1): the lit value (1 in our files)
    right = datasets.box_image(torch.ones(len(x), dtype=torch.bool), x.shape[-1]).to(x.device)  # (B, H, W)
    left = datasets.box_image(torch.zeros(len(x), dtype=torch.bool), x.shape[-1]).to(x.device)
    rule = datasets.box_image((y == 1).cpu(), x.shape[-1]).to(x.device)
    draw = lambda box: torch.where(crosses, x, box.unsqueeze(1).to(x.dtype) * fg)
    return {"left": draw(left), "right": draw(right), "train_rule": draw(rule),
            "nobox": torch.where(crosses, x, torch.zeros_like(x))}


@torch.inference_mode()
def shortcut_logits(net, split, synthetic, device, batch_size=64):
    """({variant: (N, 2) logits}, labels (N,), has_mask (N,)) on the host, in float64 from fp32 passes: the
    images as they are ("x"), masked ("masked") and, if `synthetic`, with the box left and right.

    `net` must be on `device`; its train/eval mode is restored afterwards.
    """
    was_training = net.training
    net.eval()
    # On synthetic, "nobox" is the masked input and "train_rule" is "right" for class 1 and "left" for
    # class 0 (box_variants says how, a test checks it), so four passes give every column.
    names = ("x", "masked") + (("left", "right") if synthetic else ())
    rows = []
    for x, y, mask in split.batches(batch_size):
        x, y, mask = x.to(device), y.to(device), mask.to(device)
        has_mask = mask.flatten(1).amax(1) > 0                                       # (B,)
        variants = {"x": x, "masked": x * (mask > 0)}
        if synthetic:
            moved = box_variants(x, mask, y)
            variants.update(left=moved["left"], right=moved["right"])
        logits = net(torch.cat([variants[n] for n in names]).float()).float()      # (V * B, 2)
        labels = torch.stack([y.to(logits.dtype), has_mask.to(logits.dtype)], 1)  # (B, 2)
        rows.append(torch.cat([logits.view(len(names), -1, 2), labels.unsqueeze(0)]))  # (V + 1, B, 2)
    net.train(was_training)
    table = torch.cat(rows, 1).cpu().numpy().astype(np.float64)                     # one copy to the host
    return dict(zip(names, table)), table[-1, :, 0].astype(np.int64), table[-1, :, 1] > 0


def shortcut(net, split, synthetic, device, batch_size=64):
    """The SHORTCUT_COLUMNS of `net` on `split` (a test split); the box columns None unless `synthetic`."""
    logits, y, has_mask = shortcut_logits(net, split, synthetic, device, batch_size)
    # Ranked by float64 log p(class 1), as train.py's test_auc is, so that the swing compares like with like.
    log_p = {n: log_softmax(v)[:, 1] for n, v in logits.items()}
    p = {n: np.exp(v) for n, v in log_p.items()}
    out = dict.fromkeys(SHORTCUT_COLUMNS)
    if has_mask.any():
        out["mask_effect"] = float(np.abs(p["x"] - p["masked"])[has_mask].mean())
    if has_mask.all():
        out["test_auc_masked_input"] = auc(log_p["masked"], y)
    if synthetic:
        train_rule = np.where(y == 1, log_p["right"], log_p["left"])
        out.update(box_effect=float(np.abs(p["right"] - p["left"]).mean()),
                   test_auc_nobox=auc(log_p["masked"], y), test_auc_train_rule=auc(train_rule, y))
    return out
