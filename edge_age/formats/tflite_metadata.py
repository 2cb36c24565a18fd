"""The standard TFLite Support metadata record (``TFLITE_METADATA``), which Android Studio's ML model binding and
the TFLite Support / MediaPipe metadata readers look for: model name and description, the input as an RGB image
with its normalisation, and a description and value range for each output.

tflite-support, which writes it normally, does not install beside numpy 2, so this builds the same flatbuffer
with the ``flatbuffers`` package (already a dependency of LiteRT). The field slots follow
``metadata_schema.fbs`` (TFLite Support / MediaPipe, file identifier "M001"); a union field takes two slots, its
type then its value. Only the tables written here are spelled out.
"""
from __future__ import annotations

import flatbuffers
import numpy as np
from flatbuffers import encode, number_types, table, util

RECORD_NAME = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"
# Union type codes from metadata_schema.fbs.
CONTENT_FEATURE, CONTENT_IMAGE = 1, 2
PROCESS_NORMALIZATION = 1
COLOR_SPACE = {"RGB": 1, "GRAYSCALE": 2}
# Output value ranges stated in the record (age: the span of UTKFace's labels).
OUTPUT_RANGES = {"age": (0.0, 116.0), "gender": (0.0, 1.0)}


def _strings(builder: flatbuffers.Builder, texts: list[str]) -> list[int]:
    return [builder.CreateString(text) for text in texts]


def _vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _floats(builder: flatbuffers.Builder, values) -> int:
    return builder.CreateNumpyVector(np.asarray(values, dtype=np.float32))


def _table(builder: flatbuffers.Builder, slots: int, fields: list[tuple[int, str, object]]) -> int:
    """A table whose fields are (slot, kind, value) with kind 'offset', 'uint8' or 'uint32'."""
    builder.StartObject(slots)
    for slot, kind, value in fields:
        if kind == "offset":
            builder.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "uint8":
            builder.PrependUint8Slot(slot, value, 0)
        else:
            builder.PrependUint32Slot(slot, value, 0)
    return builder.EndObject()


def _stats(builder, low: float, high: float) -> int:
    maximum, minimum = _floats(builder, [high]), _floats(builder, [low])
    return _table(builder, 2, [(0, "offset", maximum), (1, "offset", minimum)])


def _tensor(builder, name: str, description: str, content: int, process_units: int | None, stats: int) -> int:
    name_offset, description_offset = _strings(builder, [name, description])
    fields = [(0, "offset", name_offset), (1, "offset", description_offset), (3, "offset", content), (5, "offset", stats)]
    if process_units is not None:
        fields.append((4, "offset", process_units))
    return _table(builder, 7, fields)


def build(info: dict) -> bytes:
    """The record for a model described like the exporter's embedded ``edge_age`` entry (model, input, outputs)."""
    spec = info["input"]
    size = int(spec["size"])
    # The record's normalisation works on 0..255 pixels: (p - mean) / std; ours is (p / 255 - m) / s.
    mean = [255.0 * m for m in spec["mean"]]
    std = [255.0 * s for s in spec["std"]]
    builder = flatbuffers.Builder(1024)

    image_size = _table(builder, 2, [(0, "uint32", size), (1, "uint32", size)])
    image_properties = _table(builder, 2, [(0, "uint8", COLOR_SPACE[spec["channel_order"]]), (1, "offset", image_size)])
    image_content = _table(builder, 3, [(0, "uint8", CONTENT_IMAGE), (1, "offset", image_properties)])
    mean_vector, std_vector = _floats(builder, mean), _floats(builder, std)
    normalization = _table(builder, 2, [(0, "offset", mean_vector), (1, "offset", std_vector)])
    process_unit = _table(builder, 2, [(0, "uint8", PROCESS_NORMALIZATION), (1, "offset", normalization)])
    process_units = _vector(builder, [process_unit])
    low = min((0.0 - m) / s for m, s in zip(mean, std))
    high = max((255.0 - m) / s for m, s in zip(mean, std))
    input_tensor = _tensor(builder, "image", f"{spec['channel_order']} face crop, {size}x{size}, framed like a "
                           "UTKFace aligned chip (eyes level); NHWC", image_content, process_units,
                           _stats(builder, low, high))

    outputs = []
    for output in info["outputs"]:
        feature = _table(builder, 0, [])
        content = _table(builder, 3, [(0, "uint8", CONTENT_FEATURE), (1, "offset", feature)])
        low, high = OUTPUT_RANGES.get(output["name"], (0.0, 0.0))
        outputs.append(_tensor(builder, output["name"], output["meaning"], content, None, _stats(builder, low, high)))

    inputs_vector, outputs_vector = _vector(builder, [input_tensor]), _vector(builder, outputs)
    subgraph = _table(builder, 10, [(2, "offset", inputs_vector), (3, "offset", outputs_vector)])
    subgraphs = _vector(builder, [subgraph])
    model = info["model"]
    name, description, version, license_text, parser = _strings(builder, [
        model["name"],
        f"edge-age {model['name']}: age in years and P(female) from one face crop. Trained on UTKFace.",
        "edge-age-export/1",
        "Weights trained on UTKFace: non-commercial research use only.",
        MIN_PARSER_VERSION,
    ])
    root = _table(builder, 8, [(0, "offset", name), (1, "offset", description), (2, "offset", version),
                               (3, "offset", subgraphs), (5, "offset", license_text), (7, "offset", parser)])
    builder.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def read(record: bytes) -> dict:
    """The facts ``build`` writes, read back from a TFLITE_METADATA record: model name, input name, size,
    normalisation (0..255 scale) and output names. Used to check a file's record against its manifest."""
    data = bytearray(record)
    if util.GetBufferIdentifier(data, 0) != FILE_IDENTIFIER:
        raise ValueError("not a TFLite metadata record (file identifier is not M001)")

    def offset(tab, slot):
        return tab.Offset(4 + 2 * slot)

    def child(tab, slot):
        return table.Table(data, tab.Indirect(tab.Pos + offset(tab, slot)))

    def element(tab, slot, index):
        return table.Table(data, tab.Indirect(tab.Vector(offset(tab, slot)) + 4 * index))

    def text(tab, slot):
        return tab.String(tab.Pos + offset(tab, slot)).decode()

    def floats(tab, slot):
        start = tab.Vector(offset(tab, slot))
        return [encode.Get(number_types.Float32Flags.packer_type, data, start + 4 * i)
                for i in range(tab.VectorLen(offset(tab, slot)))]

    root = table.Table(data, encode.Get(number_types.UOffsetTFlags.packer_type, data, 0))
    subgraph = element(root, 3, 0)
    image_input = element(subgraph, 2, 0)
    image_size = child(child(child(image_input, 3), 1), 1)  # content -> ImageProperties -> default_size
    normalization = child(element(image_input, 4, 0), 1)  # process_units[0] -> NormalizationOptions
    return {
        "name": text(root, 0),
        "input": text(image_input, 0),
        "size": image_size.Get(number_types.Uint32Flags, image_size.Pos + offset(image_size, 0)),
        "mean": floats(normalization, 0),
        "std": floats(normalization, 1),
        "outputs": [text(element(subgraph, 3, i), 0) for i in range(subgraph.VectorLen(offset(subgraph, 3)))],
    }
