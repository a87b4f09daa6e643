"""The paper's protocol as names and one rule, without torch.

The methods and their order, the epochs a model may be selected at, the
epochs probed during training and the cascade's steps. train.py, saliency.py,
sweep.py and plots.py all read them here, so that plots.py can turn a results
CSV into tables without loading torch or the training stack.
"""

# The six methods in the paper's table order; losses.METHODS maps each to its loss (a test keeps the two equal).
METHODS = ("baseline", "masked", "actdiff", "adversarial", "gradmask", "rrr")

# Cascading randomisation (Adebayo et al. 2018): the layers re-initialised, from the top down.
CASCADE = ("fc", "layer4", "layer3", "layer2", "layer1", "conv1")

# Early epochs of several methods still read the synthetic box: train.py --probes measures the model then.
PROBE_EPOCHS = (1, 2, 5, 10, 20, 50)


def eligible(epoch, epochs, burn_in):
    """Whether a model may be selected at `epoch`: from the burn-in on (the released training loop never
    selected an epoch before the 5th), or at the last epoch of a run shorter than that. Ints, arrays or
    pandas columns alike (elementwise)."""
    return (epoch >= burn_in) | (epoch == epochs)
