package dev.edgeage.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Face pixels -> the model's input tensor, as the manifest says: x / 255, then (x - mean) / std per channel,
 * channels in the manifest's order, NHWC; for a file with an int8 input, quantised with its scale and zero
 * point (round half to even, as numpy and LiteRT's converter do).
 */
public final class InputTensor {
    private InputTensor() {
    }

    /** size x size x 3 RGB values in 0..255 (FaceCrop's output) -> normalised floats, NHWC. */
    public static float[] normalise(float[] rgb, ModelSpec spec) {
        if (rgb.length != spec.inputSize * spec.inputSize * 3) {
            throw new IllegalArgumentException("expected " + spec.inputSize + " x " + spec.inputSize + " x 3 values, got " + rgb.length);
        }
        boolean bgr = spec.channelOrder.equals("BGR");
        float[] out = new float[rgb.length];
        for (int at = 0; at < rgb.length; at += 3) {
            for (int ch = 0; ch < 3; ch++) {
                float value = rgb[at + (bgr ? 2 - ch : ch)];
                out[at + ch] = (value / 255f - spec.mean[ch]) / spec.std[ch];
            }
        }
        return out;
    }

    /** Normalised floats -> int8 values: q = round(x / scale + zeroPoint), clamped to -128..127. */
    public static byte[] quantize(float[] values, double scale, int zeroPoint) {
        if (!(scale > 0)) {
            throw new IllegalArgumentException("quantisation scale must be positive, got " + scale);
        }
        float floatScale = (float) scale;
        byte[] out = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            double q = Math.rint(values[i] / floatScale + zeroPoint);
            out[i] = (byte) Math.max(-128, Math.min(127, q));
        }
        return out;
    }

    /** A direct buffer the size of this file's input tensor (allocate once, then write() each face into it). */
    public static ByteBuffer allocate(ModelSpec spec, ModelSpec.ModelFile file) {
        int values = spec.inputSize * spec.inputSize * 3;
        return ByteBuffer.allocateDirect(file.isInt8Input() ? values : values * 4).order(ByteOrder.nativeOrder());
    }

    /** Put normalised floats into the buffer as this file takes them (float32, or int8 quantised), rewound. */
    public static void write(float[] normalised, ModelSpec.ModelFile file, ByteBuffer buffer) {
        buffer.rewind();
        if (file.isInt8Input()) {
            buffer.put(quantize(normalised, file.inputScale, file.inputZeroPoint));
        } else {
            buffer.asFloatBuffer().put(normalised);
        }
        buffer.rewind();
    }
}
