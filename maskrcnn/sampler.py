"""Fixed-size random subsampling of positive and negative predictions, with static shapes."""
from mindspore import ops


def subsample(positive, negative, num_samples, positive_fraction, random_keys):
    """Pick up to `num_samples` predictions, at most `positive_fraction` of them positive, the rest negative.

    positive, negative (A,) bool (disjoint); random_keys (A,) uniform [0, 1) deciding which ones are taken.
    Returns index (num_samples,) int32 with positives first, and is_positive / is_sampled (num_samples,)
    bool; slots beyond the available predictions have is_sampled False.
    """
    max_positive = int(num_samples * positive_fraction)
    num_positive = ops.minimum(positive.sum(), max_positive)
    num_negative = ops.minimum(negative.sum(), num_samples - num_positive)
    pos_keys = ops.where(positive, random_keys, ops.full_like(random_keys, -1.0))
    neg_keys = ops.where(negative, random_keys, ops.full_like(random_keys, -1.0))
    _, pos_index = ops.topk(pos_keys, max_positive)
    _, neg_index = ops.topk(neg_keys, num_samples)
    slot = ops.arange(num_samples)
    # Slots [0, num_positive) take positives, [num_positive, num_positive + num_negative) negatives.
    neg_slot = ops.clamp(slot - num_positive, 0, num_samples - 1)
    pos_slot = ops.clamp(slot, 0, max_positive - 1)
    is_positive = slot < num_positive
    index = ops.where(is_positive, ops.gather(pos_index, pos_slot, 0), ops.gather(neg_index, neg_slot, 0))
    return index, is_positive, slot < num_positive + num_negative
