import pytest
import torch

from model import UNet, fused_for_inference


@pytest.mark.parametrize("shape", [(1, 3, 97, 131), (2, 3, 33, 250), (1, 3, 16, 16), (1, 3, 1, 1)])
def test_output_has_the_input_size_for_any_height_and_width(shape):
    model = UNet(num_classes=21, base_channels=8).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (shape[0], 21, shape[2], shape[3])


def test_parameter_count_at_defaults_is_31_0_million():
    count = sum(p.numel() for p in UNet().parameters())
    assert 30.95e6 < count < 31.05e6


def test_default_widths_follow_the_paper():
    model = UNet()
    widths = [model.inc[0].out_channels] + [
        getattr(model, f"down{i}")[1][0].out_channels for i in range(1, 5)
    ]
    assert widths == [64, 128, 256, 512, 1024]


def test_convolutions_feeding_batchnorm_have_no_bias():
    model = UNet(base_channels=8)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m for m in convs if m.bias is not None] == [model.outc]


def test_gradients_reach_every_parameter():
    model = UNet(in_channels=3, num_classes=5, base_channels=4)
    out = model(torch.randn(2, 3, 40, 36))
    torch.nn.functional.cross_entropy(out, torch.randint(0, 5, (2, 40, 36))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_eval_mode_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    model = UNet(base_channels=8)
    model(torch.randn(4, 3, 32, 32))  # move the BatchNorm running statistics away from their start
    model.eval()
    x = torch.randn(3, 3, 45, 61)
    with torch.no_grad():
        first, second = model(x), model(x)
        single = model(x[1:2])
    assert torch.equal(first, second)
    torch.testing.assert_close(single, first[1:2], rtol=1e-4, atol=1e-5)


def test_in_channels_and_num_classes_are_honoured():
    model = UNet(in_channels=1, num_classes=2, base_channels=4)
    assert model(torch.randn(1, 1, 20, 20)).shape == (1, 2, 20, 20)


def trained_a_little(base_channels=8, seed=0):
    """A model whose BatchNorm statistics and weights have moved off their initial values."""
    torch.manual_seed(seed)
    model = UNet(num_classes=21, base_channels=base_channels)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(5):
        x, y = torch.randn(4, 3, 48, 48), torch.randint(0, 21, (4, 48, 48))
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def test_folding_batchnorm_keeps_the_outputs_within_1e_4():
    model = trained_a_little()
    fused = fused_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 3, 45, 70)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)
    assert model.training is False and any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_fast_cpu_path_predicts_like_fp32_eager():
    """bf16 autocast + channels-last + folded BatchNorm (the default CPU inference path) against plain fp32
    NCHW eager: logits within 3% (relative L2 error), and at least 97% of pixels get the same class."""
    model = trained_a_little()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        reference = model(x)
        fast_model = fused_for_inference(model.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = fast_model(x.contiguous(memory_format=torch.channels_last)).float()
    assert ((fast - reference).norm() / reference.norm()).item() < 0.03
    assert (fast.argmax(1) == reference.argmax(1)).float().mean().item() >= 0.97
