"""The registered models; importing this package registers them."""
from edge_age.models import custom_cnn, efficientnet_lite, ma_sfv2, vgg16_transfer  # noqa: F401
