import numpy as np
import pytest
import torch
from torch import nn

from edge_age import create_model, list_models, model_from_config
from edge_age.model_stats import count_flops, count_parameters
from edge_age.models.age_bins import AgeBinsReadout, median_shift
from edge_age.models.ma_sfv2 import STAGE_CHANNELS, SpatialAttention, SqueezeExcite


@pytest.mark.parametrize("name,options,extra_keys", [
    ("custom_cnn", {"img_size": 64}, set()),
    ("vgg16_transfer", {"img_size": 64}, set()),
    ("ma_sfv2", {"width": 0.5, "img_size": 64}, {"age_logits", "age_expectation", "age_median", "age_regression"}),
])
def test_outputs_shapes_and_dtypes(name, options, extra_keys):
    model = create_model(name, **options).eval()
    size = model.input_spec.size
    with torch.no_grad():
        out = model(torch.rand(3, 3, size, size))
    assert set(out) == {"age", "gender_logit"} | extra_keys
    assert out["age"].shape == (3,) and out["age"].dtype == torch.float32
    assert out["gender_logit"].shape == (3,) and out["gender_logit"].dtype == torch.float32
    if "age_logits" in extra_keys:
        assert out["age_logits"].shape == (3, 101)


def test_age_median_reading_of_the_101_bins():
    readout = AgeBinsReadout()
    logits = torch.randn(400, 101, generator=torch.Generator().manual_seed(0)) * 3
    probs = torch.softmax(logits.double(), 1).numpy()
    below = np.concatenate([np.zeros((400, 1)), probs.cumsum(1)[:, :-1]], axis=1)
    k = (below + probs < 0.5).sum(1)  # the bin the median falls in; bin k spans [k - 0.5, k + 0.5)
    rows = np.arange(400)
    median = k - 0.5 + (0.5 - below[rows, k]) / probs[rows, k]
    np.testing.assert_allclose(readout(logits)["age_median"].numpy(), median, atol=1e-3)
    point = torch.full((1, 101), -30.0)
    point[0, 37] = 30.0
    assert readout(point)["age_median"].item() == pytest.approx(37.0, abs=1e-3)
    # a distribution skewed towards old age: the median sits below the mean, as it should
    skewed = torch.log(torch.tensor([[0.0] * 30 + [0.6] + [0.4 / 70] * 70]) + 1e-12)
    out = readout(skewed)
    assert out["age_median"].item() < 31 < out["age_expectation"].item()
    with pytest.raises(ValueError, match="age_output must be one of"):
        create_model("ma_sfv2", width=0.5, img_size=64, age_output="mode")


def test_median_shift_measures_distance_from_the_median_in_probability_mass():
    readout = AgeBinsReadout()
    logits = torch.randn(400, 101, generator=torch.Generator().manual_seed(1)) * 3
    probs = torch.softmax(logits.double(), 1).numpy()
    median = readout(logits)["age_median"].numpy()
    assert median_shift(probs, median).max() < 1e-5  # the inverse of the reading: its own median is 0 away
    # a year past the median of a distribution peaked there moves through about half its mass
    peaked = np.zeros((1, 101))
    peaked[0, 40] = 0.9
    peaked[0, [39, 41]] = 0.05
    assert median_shift(peaked, np.array([40.0]))[0] == pytest.approx(0.0)
    assert median_shift(peaked, np.array([41.0]))[0] == pytest.approx(0.475)
    # two modes with 0.2% a year between them: 2.5 years from the median is only 0.005 of the mass
    two_modes = np.full((1, 101), 0.002)
    two_modes[0, [25, 75]] = 0.399  # 0.05 under 25 and over 75, 0.098 between, 0.002 a year
    two_modes /= two_modes.sum()
    middle = readout(torch.log(torch.from_numpy(two_modes)).float())["age_median"].item()
    assert middle == pytest.approx(50.0, abs=0.01)
    assert median_shift(two_modes, np.array([middle + 2.5]))[0] == pytest.approx(0.005, rel=0.01)


def test_custom_cnn_parameter_count_by_hand():
    # conv: k*k*in*out + out for 3->32->64->128->256; 128 px / 2^4 = 8x8x256 = 16384 features
    convs = sum(3 * 3 * i * o + o for i, o in [(3, 32), (32, 64), (64, 128), (128, 256)])
    assert convs == 896 + 18_496 + 73_856 + 295_168
    dense = 16_384 * 128 + 128
    heads = 2 * (128 + 1)
    assert count_parameters(create_model("custom_cnn")) == convs + dense + heads == 2_485_954


def test_model_a_input_spec_is_unit_scaled_128():
    spec = create_model("custom_cnn").input_spec
    assert spec.size == 128 and spec.mean == (0, 0, 0) and spec.std == (1, 1, 1)


@pytest.mark.parametrize("width", sorted(STAGE_CHANNELS))
def test_shufflenet_widths(width):
    model = create_model("ma_sfv2", width=width, img_size=64)
    expected = STAGE_CHANNELS[width]
    assert model.stem[0].out_channels == expected[0]
    for stage, channels in zip(model.stages, expected[1:4]):
        assert stage[-1].branch[-3].out_channels * 2 == channels
    assert model.conv5[0].out_channels == expected[4]
    assert [len(s) for s in model.stages] == [4, 8, 4]


def test_attention_on_off():
    with_attention = create_model("ma_sfv2", width=1.0, img_size=64)
    plain = create_model("ma_sfv2", width=1.0, img_size=64, attention=False)
    assert sum(isinstance(m, SqueezeExcite) for m in with_attention.modules()) == 13  # 3 + 7 + 3 basic units
    assert sum(isinstance(m, SpatialAttention) for m in with_attention.modules()) == 13
    assert not any(isinstance(m, (SqueezeExcite, SpatialAttention)) for m in plain.modules())
    assert count_parameters(with_attention) > count_parameters(plain)


def test_regression_neuron_starts_at_the_expectation():
    model = create_model("ma_sfv2", width=0.5, img_size=64).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    torch.testing.assert_close(out["age_regression"], out["age_expectation"])
    regression = create_model("ma_sfv2", width=0.5, img_size=64, age_output="regression")
    assert regression.age_output == "regression"


def test_registry_errors_and_rebuild():
    assert list_models() == ["custom_cnn", "efficientnet_lite0", "ma_sfv2", "vgg16_transfer"]
    with pytest.raises(ValueError, match="unknown model 'resnet'.*custom_cnn"):
        create_model("resnet")
    with pytest.raises(ValueError, match="bad options"):
        create_model("custom_cnn", depth=3)
    with pytest.raises(ValueError, match="width must be one of"):
        create_model("ma_sfv2", width=3.0)
    model = create_model("ma_sfv2", width=0.5, img_size=96)
    rebuilt = model_from_config(model.config())
    assert rebuilt.config() == model.config() and rebuilt.input_spec.size == 96


def test_flops_are_counted():
    flops = count_flops(create_model("custom_cnn"))
    # first conv alone: 128*128 outputs * 32 filters * 27 MACs * 2
    assert flops > 2 * 128 * 128 * 32 * 27


def test_linear_age_outputs_start_at_the_mean_age_and_expectation_heads_keep_theirs():
    cnn = create_model("custom_cnn", img_size=64)
    cnn.start_age_at(33.5)
    assert cnn.age_head.bias.item() == pytest.approx(33.5)
    sfv2 = create_model("ma_sfv2", width=0.5, img_size=64)
    before = {k: v.clone() for k, v in sfv2.state_dict().items()}
    sfv2.start_age_at(33.5)
    assert all(torch.equal(before[k], v) for k, v in sfv2.state_dict().items())


def test_vgg16_base_from_scratch_passes_the_signal_through_its_13_convolutions():
    """Without ImageNet weights the base trains from its initialisation: He init keeps a unit-variance input at
    std ~0.14 after the five blocks; PyTorch's default init left ~0.006, and such a base hardly learned."""
    torch.manual_seed(0)
    base = create_model("vgg16_transfer", img_size=64).features
    with torch.no_grad():
        assert base(torch.randn(4, 3, 64, 64)).std().item() > 0.05


def test_ma_sfv2_stem_pool_pads_with_zeros_and_answers_as_pytorchs_max_pool():
    """After a ReLU, zero padding equals max_pool2d's -inf padding (odd and even sizes); the swap only changes what
    the TFLite converter emits (PAD, which XNNPACK runs, for PADV2, which it does not)."""
    from edge_age.models.ma_sfv2 import MaxPoolAfterReLU

    for size in (64, 63, 16):
        x = torch.relu(torch.randn(2, 24, size, size))
        assert torch.equal(MaxPoolAfterReLU()(x), nn.MaxPool2d(3, 2, 1)(x))
    negative = -torch.rand(1, 1, 4, 4) - 0.5  # where the input can be negative the two differ: hence "AfterReLU"
    assert not torch.equal(MaxPoolAfterReLU()(negative), nn.MaxPool2d(3, 2, 1)(negative))
