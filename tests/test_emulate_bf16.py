import json

import pytest
import torch

import inference
import main
from model import UNet
from tools.emulate_bf16 import EmulatedBF16, run
from utils import UserError, autocast


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


def conv_pass(
    conv: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor, context
) -> tuple[torch.Tensor, ...]:
    """Output, input gradient and weight gradient of one pass of `conv` inside `context`."""
    conv.zero_grad()
    x = x.clone().requires_grad_()
    with context:
        output = conv(x)
    (output.float() * grad).sum().backward()
    return output.float().detach(), x.grad, conv.weight.grad.clone()


def is_bf16(x: torch.Tensor) -> bool:
    return torch.equal(x, x.bfloat16().float())


@pytest.mark.parametrize("transposed", [False, True])
def test_a_convolution_reads_and_writes_bf16_as_autocast_does_and_keeps_float32_tensors(transposed):
    torch.manual_seed(0)
    # without bias when transposed: PyTorch's CPU bf16 adds it after rounding, a second rounding
    conv = (
        torch.nn.ConvTranspose2d(16, 8, 2, stride=2, bias=False) if transposed else torch.nn.Conv2d(16, 8, 3)
    )
    x = torch.randn(2, 16, 12, 12)
    grad = torch.randn_like(conv(x))
    fp32 = conv_pass(conv, x, grad, torch.autocast("cpu", enabled=False))
    real = conv_pass(conv, x, grad, torch.autocast("cpu", dtype=torch.bfloat16))
    emulated = conv_pass(conv, x, grad, EmulatedBF16())
    # forward: the same bf16 output as PyTorch's bf16 up to the order of the float32 sums
    assert relative(emulated[0], real[0]) < 1e-4
    assert relative(fp32[0], real[0]) > 1e-3  # float32 is not: the rounding is what is emulated
    # backward: gradients rounded to bf16 (float32 tensors holding bf16 values), unlike float32's
    for tensor in emulated:
        assert tensor.dtype == torch.float32 and is_bf16(tensor)
    assert not is_bf16(fp32[1]) and not is_bf16(fp32[2])


def test_the_input_gradient_of_a_1x1_convolution_equals_pytorchs_bf16():
    # (a 3x3 kernel would not: PyTorch's bf16 on a CPU without native bf16 sums the taps in bf16)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 8, 1, bias=False)
    x = torch.randn(2, 16, 12, 12)
    grad = torch.randn(2, 8, 12, 12)
    real = conv_pass(conv, x, grad, torch.autocast("cpu", dtype=torch.bfloat16))
    emulated = conv_pass(conv, x, grad, EmulatedBF16())
    assert relative(emulated[1], real[1]) < 1e-4


def test_a_unets_logits_are_nearer_pytorchs_bf16_than_float32s_are():
    torch.manual_seed(0)
    model = UNet(3, 11, 8)
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        real = model(x)
    with EmulatedBF16():
        emulated = model(x)
    assert relative(emulated, real) < 0.5 * relative(model(x), real)


def test_everything_but_convolutions_runs_in_float32_untouched():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    batchnorm = torch.nn.BatchNorm2d(4)
    with EmulatedBF16():
        inside = torch.relu(batchnorm(x))
    assert torch.equal(inside, torch.relu(batchnorm(x))) and not is_bf16(inside)


def test_other_precisions_are_refused_naming_the_flag():
    with pytest.raises(UserError, match="--amp off: this tool emulates --amp bf16"):
        run(["--amp", "off"])


def test_compile_is_refused_naming_the_flag():  # torch.compile traces past the emulation's rounding
    with pytest.raises(UserError, match="--compile: .* drop --compile"):
        run(["--amp", "bf16", "--compile"])


def test_a_training_run_is_emulated_bf16_and_main_is_left_as_it_was(tmp_path, prepared_demo):
    common = ["--data_dir", str(prepared_demo), "--save_dir", str(tmp_path / "exp"), "--tensorboard_dir",
              str(tmp_path / "tb"), "--epochs", "1", "--batch_size", "4", "--crop_size", "48",
              "--base_channels", "4", "--channels_last", "off", "--seed", "0"]  # fmt: skip
    assert run([*common, "--amp", "bf16", "--name", "emulated"]) == 0
    assert main.autocast is autocast and inference.autocast is autocast
    assert main.cli([*common, "--amp", "off", "--name", "fp32"]) == 0
    metrics = (tmp_path / "exp" / "emulated" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in metrics] == [1]  # trained, validated, logged
    emulated, fp32 = (
        torch.load(tmp_path / "exp" / n / "last.pth", weights_only=True) for n in ("emulated", "fp32")
    )
    assert emulated["args"]["amp"] == "bf16"
    weights = [(emulated["model"][k], fp32["model"][k]) for k in fp32["model"] if k.endswith("weight")]
    assert all(a.dtype == torch.float32 for a, _ in weights)  # float32 master weights, as under autocast
    assert any(not torch.equal(a, b) for a, b in weights)  # the rounding changed the training
