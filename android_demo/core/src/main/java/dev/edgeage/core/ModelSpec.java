package dev.edgeage.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * What the app must know to use an exported model, read from the manifest.json that
 * {@code edge-age android install} writes beside the .tflite files: input size, normalisation, channel order,
 * output names, the face-crop template and each file's input type. The app hard-codes none of it.
 */
public final class ModelSpec {
    /** One .tflite file of the model: its precision and how its input tensor is stored. */
    public static final class ModelFile {
        public final String file;
        public final String precision;
        /** "float32" or "int8". */
        public final String inputDtype;
        /** For an int8 input: real value = (q - zeroPoint) * scale. Unused for float inputs. */
        public final double inputScale;
        public final int inputZeroPoint;

        ModelFile(String file, String precision, String inputDtype, double inputScale, int inputZeroPoint) {
            this.file = file;
            this.precision = precision;
            this.inputDtype = inputDtype;
            this.inputScale = inputScale;
            this.inputZeroPoint = inputZeroPoint;
        }

        public boolean isInt8Input() {
            return "int8".equals(inputDtype);
        }
    }

    public final String modelName;
    public final int inputSize;
    public final float[] mean;
    public final float[] std;
    /** "RGB" or "BGR": the order of the three channels in the input tensor. */
    public final String channelOrder;
    /** Output names in the exporter's order (output_0, output_1, ...): "age", then "gender". */
    public final List<String> outputNames;
    public final int chipSize;
    /** Eye centres in the chip: {image-left eye x, y, image-right eye x, y}. */
    public final double[] eyeTemplate;
    public final List<ModelFile> files;

    private ModelSpec(Map<String, Object> manifest) {
        Map<String, Object> model = object(manifest, "model");
        modelName = string(model, "name");
        Map<String, Object> input = object(manifest, "input");
        inputSize = (int) number(input, "size");
        if (inputSize < 8 || inputSize > 4096) {
            throw bad("input.size " + inputSize + " is not a plausible image size");
        }
        mean = triple(input, "mean");
        std = triple(input, "std");
        for (float s : std) {
            if (!(s > 0)) {
                throw bad("input.std must be positive, got " + s);
            }
        }
        channelOrder = string(input, "channel_order");
        if (!channelOrder.equals("RGB") && !channelOrder.equals("BGR")) {
            throw bad("input.channel_order must be RGB or BGR, got " + channelOrder);
        }
        List<String> names = new ArrayList<>();
        for (Object output : list(manifest, "outputs")) {
            names.add(string(asObject(output, "outputs[]"), "name"));
        }
        if (!names.contains("age") || !names.contains("gender")) {
            throw bad("outputs must include \"age\" and \"gender\", got " + names);
        }
        outputNames = Collections.unmodifiableList(names);
        Map<String, Object> alignment = object(manifest, "alignment");
        chipSize = (int) number(alignment, "chip_size");
        List<Object> eyes = list(alignment, "eye_template");
        if (eyes.size() != 2) {
            throw bad("alignment.eye_template must hold two points");
        }
        eyeTemplate = new double[4];
        for (int i = 0; i < 2; i++) {
            List<Object> point = asList(eyes.get(i), "alignment.eye_template[" + i + "]");
            eyeTemplate[2 * i] = asNumber(point.get(0), "eye_template x");
            eyeTemplate[2 * i + 1] = asNumber(point.get(1), "eye_template y");
        }
        List<ModelFile> found = new ArrayList<>();
        for (Object item : list(manifest, "files")) {
            Map<String, Object> entry = asObject(item, "files[]");
            Map<String, Object> tensor = object(entry, "input_tensor");
            String dtype = string(tensor, "dtype");
            double scale = 0;
            int zeroPoint = 0;
            if (dtype.equals("int8")) {
                scale = number(tensor, "scale");
                zeroPoint = (int) number(tensor, "zero_point");
            } else if (!dtype.equals("float32")) {
                throw bad(string(entry, "file") + ": input_tensor dtype " + dtype + " is neither float32 nor int8");
            }
            found.add(new ModelFile(string(entry, "file"), string(entry, "precision"), dtype, scale, zeroPoint));
        }
        if (found.isEmpty()) {
            throw bad("lists no model files");
        }
        files = Collections.unmodifiableList(found);
    }

    /** Read a manifest's text; IllegalArgumentException names the missing or wrong field. */
    public static ModelSpec parse(String manifestJson) {
        return new ModelSpec(asObject(Json.parse(manifestJson), "the manifest"));
    }

    /** The listed file with this name. */
    public ModelFile file(String name) {
        for (ModelFile f : files) {
            if (f.file.equals(name)) {
                return f;
            }
        }
        throw new IllegalArgumentException("manifest.json lists no file " + name);
    }

    /** The index of an output name ("age", "gender") in the exporter's output order. */
    public int outputIndex(String name) {
        return outputNames.indexOf(name);
    }

    private static IllegalArgumentException bad(String what) {
        return new IllegalArgumentException("manifest.json: " + what);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> asObject(Object value, String where) {
        if (!(value instanceof Map)) {
            throw bad(where + " must be an object");
        }
        return (Map<String, Object>) value;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> asList(Object value, String where) {
        if (!(value instanceof List)) {
            throw bad(where + " must be a list");
        }
        return (List<Object>) value;
    }

    private static double asNumber(Object value, String where) {
        if (!(value instanceof Double)) {
            throw bad(where + " must be a number");
        }
        return (Double) value;
    }

    private static Object field(Map<String, Object> map, String key) {
        if (!map.containsKey(key)) {
            throw bad("missing \"" + key + "\"");
        }
        return map.get(key);
    }

    private static Map<String, Object> object(Map<String, Object> map, String key) {
        return asObject(field(map, key), key);
    }

    private static List<Object> list(Map<String, Object> map, String key) {
        return asList(field(map, key), key);
    }

    private static String string(Map<String, Object> map, String key) {
        Object value = field(map, key);
        if (!(value instanceof String)) {
            throw bad("\"" + key + "\" must be a string");
        }
        return (String) value;
    }

    private static double number(Map<String, Object> map, String key) {
        return asNumber(field(map, key), "\"" + key + "\"");
    }

    private static float[] triple(Map<String, Object> map, String key) {
        List<Object> values = list(map, key);
        if (values.size() != 3) {
            throw bad("input." + key + " must hold 3 values (one per channel), got " + values.size());
        }
        float[] out = new float[3];
        for (int i = 0; i < 3; i++) {
            out[i] = (float) asNumber(values.get(i), "input." + key + "[" + i + "]");
        }
        return out;
    }
}
