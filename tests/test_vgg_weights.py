import pytest
import torch

from edge_age import create_model
from edge_age.models.vgg16_transfer import VGG16_WEIGHTS_FILE, fetch_imagenet_weights, load_backbone_weights


def _torchvision_format_state_dict():
    """A state dict with torchvision vgg16's key names and shapes (features.* plus classifier.*)."""
    donor = create_model("vgg16_transfer")
    state = {f"features.{k}": torch.randn_like(v) for k, v in donor.features.state_dict().items()}
    state.update({"classifier.0.weight": torch.randn(4096, 25088), "classifier.0.bias": torch.zeros(4096)})
    return state


def test_loads_locally_saved_torchvision_vgg16(tmp_path):
    state = _torchvision_format_state_dict()
    path = tmp_path / VGG16_WEIGHTS_FILE
    torch.save(state, path)
    model = create_model("vgg16_transfer")
    load_backbone_weights(model, path)
    torch.testing.assert_close(model.features[0].weight, state["features.0.weight"])
    torch.testing.assert_close(model.features[28].bias, state["features.28.bias"])


def test_bad_weight_files_give_clear_errors(tmp_path):
    model = create_model("vgg16_transfer")
    with pytest.raises(FileNotFoundError, match=VGG16_WEIGHTS_FILE):
        load_backbone_weights(model, tmp_path / "absent.pth")
    good = tmp_path / "good.pth"
    torch.save(_torchvision_format_state_dict(), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a readable PyTorch state dict"):
        load_backbone_weights(model, truncated)
    other = tmp_path / "other.pth"
    torch.save(create_model("custom_cnn").state_dict(), other)
    with pytest.raises(ValueError, match="not a torchvision VGG16 state dict"):
        load_backbone_weights(model, other)


def test_pretrained_offline_names_the_file_to_supply(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    monkeypatch.setenv("EDGE_AGE_VGG16_URL", "http://127.0.0.1:9/vgg16-397923af.pth")  # nothing listens there
    with pytest.raises(RuntimeError, match=rf"{VGG16_WEIGHTS_FILE}.*--backbone-weights"):
        fetch_imagenet_weights()
    assert not list(tmp_path.rglob("*.pth"))  # nothing half-downloaded left as if complete


def test_freeze_and_unfreeze_last_10_keras_layers():
    model = create_model("vgg16_transfer")
    model.freeze_base()
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.age_head.parameters())
    names = model.unfreeze_last_keras_layers(10)
    assert names == ["block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3",
                     "block5_conv1", "block5_conv2", "block5_conv3"]
    trainable = {k.split(".")[0] for k, p in model.features.named_parameters() if p.requires_grad}
    assert trainable == {"14", "17", "19", "21", "24", "26", "28"}
