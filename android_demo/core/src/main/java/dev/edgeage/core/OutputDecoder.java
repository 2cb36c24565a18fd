package dev.edgeage.core;

import java.util.Arrays;

/**
 * The interpreter's output tensors -> age and gender. The exporter's model returns (age in years,
 * P(female)) as output_0 and output_1; LiteRT lists output tensors in no guaranteed order, so they are
 * matched by name, sorted, exactly as the Python runner (edge_age.runtimes.TFLiteRunner) does.
 */
public final class OutputDecoder {
    private OutputDecoder() {
    }

    /** order[k] = the interpreter's output index holding the manifest's k-th output. */
    public static int[] tensorOrder(String[] tensorNames, ModelSpec spec) {
        if (tensorNames.length != spec.outputNames.size()) {
            throw new IllegalArgumentException("the model file has " + tensorNames.length + " outputs, the manifest names "
                    + spec.outputNames.size() + " " + spec.outputNames);
        }
        Integer[] order = new Integer[tensorNames.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> tensorNames[x].compareTo(tensorNames[y]));
        int[] out = new int[order.length];
        for (int i = 0; i < order.length; i++) {
            out[i] = order[i];
        }
        return out;
    }

    /** A stored output value as a real number: (q - zeroPoint) * scale for quantised outputs (scale > 0). */
    public static float dequantize(float stored, double scale, int zeroPoint) {
        return scale > 0 ? (stored - zeroPoint) * (float) scale : stored;
    }

    /** Outputs in the manifest's order (real values) -> the answer. */
    public static AgeGender decode(float[] outputs, ModelSpec spec) {
        return new AgeGender(outputs[spec.outputIndex("age")], outputs[spec.outputIndex("gender")]);
    }
}
