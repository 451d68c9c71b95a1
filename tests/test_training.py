"""training.py: the criterion (cross-entropy, soft Dice), class weights and the training step."""

import numpy as np
import pytest
import torch

from model import UNet
from training import criterion, get_class_weights, soft_dice_loss, train_step


def test_median_frequency_weights_divide_the_median_frequency_by_each_class_frequency():
    # Frequency: a class's pixels over the pixels of the images holding it (0.75, 0.25, 0.25).
    counts = np.array([[30, 10, 0], [60, 0, 20]])  # 2 images x 3 classes
    weights = get_class_weights(counts, "median_freq", torch.device("cpu"))
    torch.testing.assert_close(weights, torch.tensor([1 / 3, 1.0, 1.0]))


def test_a_class_absent_from_every_training_image_gets_weight_zero():
    weights = get_class_weights(np.array([[30, 10, 0]]), "median_freq", torch.device("cpu"))
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 2.0, 0.0]))  # median of 0.75 and 0.25


def test_enet_weights_are_one_over_the_log_of_1_02_plus_the_class_share_of_all_pixels():
    counts = np.array([[30, 10, 0], [60, 0, 0]])  # shares 0.9, 0.1; the third class is in no image
    weights = get_class_weights(counts, "enet", torch.device("cpu"))
    expected = [1 / np.log(1.02 + 0.9), 1 / np.log(1.02 + 0.1), 0.0]
    torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float32))
    assert 1 < weights[0] < weights[1] < 50


def test_class_weights_none_leave_the_loss_unweighted():
    assert get_class_weights(np.array([[30, 10, 0]]), "none", torch.device("cpu")) is None


def test_a_bf16_training_step_stays_near_the_float32_step():
    """Where bf16 autocast could cost accuracy: the loss is computed in float32 and within 2% of the
    float32 step's, BatchNorm's running statistics stay within 2%, and the bf16 gradient differs from
    the float32 gradient of the same batch by less than half as much as the float32 gradient of another
    batch does (bf16's rounding is smaller than the noise of the minibatch)."""
    torch.manual_seed(0)

    def batch():  # labels that follow the image, so there is something to learn
        images = torch.randn(4, 3, 32, 32)
        return images, (images[:, 0] > 0).long() + 2 * (images[:, 1] > 0.5).long()

    first, other = batch(), batch()
    init = UNet(3, 5, base_channels=4).state_dict()
    models, losses, grads = [], [], []
    for (images, masks), amp_dtype in ((first, None), (first, torch.bfloat16), (other, None)):
        model = UNet(3, 5, base_channels=4)
        model.load_state_dict(init)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        losses.append(train_step(model.train(), images, masks, optimizer, scaler, amp_dtype))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        models.append(model)
    fp32, bf16, _ = models
    assert losses[1].dtype == torch.float32  # criterion casts the bf16 logits up before the loss
    torch.testing.assert_close(losses[1], losses[0], rtol=0.02, atol=0)
    for name in ("running_mean", "running_var"):
        stats = [torch.cat([b for n, b in m.named_buffers() if n.endswith(name)]) for m in (fp32, bf16)]
        torch.testing.assert_close(stats[1], stats[0], rtol=0.02, atol=0.01)
    assert (grads[1] - grads[0]).norm() < 0.5 * (grads[2] - grads[0]).norm()


def test_soft_dice_loss_is_zero_for_a_sure_right_answer_and_near_one_for_a_sure_wrong_one():
    masks = torch.tensor([[[0, 0, 1], [1, 1, 0]]])
    right = torch.nn.functional.one_hot(masks, 2).permute(0, 3, 1, 2).float() * 50
    assert soft_dice_loss(right, masks).item() == pytest.approx(0, abs=1e-6)
    assert soft_dice_loss(-right, masks).item() == pytest.approx(1, abs=0.15)  # eps keeps it below 1


def test_void_pixels_count_in_neither_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    masks = torch.randint(0, 3, (2, 8, 8))
    masks[:, :3] = 255
    changed = logits.clone()
    changed[:, :, :3] = torch.randn(2, 3, 3, 8) * 10  # other logits where the mask is void
    for loss in ("ce", "ce+dice"):
        assert criterion(changed, masks, loss=loss).item() == pytest.approx(
            criterion(logits, masks, loss=loss).item()
        )
    assert criterion(logits, masks, loss="ce+dice") > criterion(logits, masks, loss="ce")
