package dev.edgeage.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The core against vectors written by {@code edge-age android golden}: LiteRT in Python ran the app's model
 * files on real faces. From the same RGB bytes and eye points the core must build the same input tensor
 * (floats to 1e-5, int8 exactly), and from the same raw outputs the same age and P(female) (to 1e-4).
 * Paths: -Dedgeage.golden (default src/test/resources/golden.json) and -Dedgeage.manifest (default the app's).
 */
public class GoldenVectorsTest {
    private static Map<String, Object> golden;
    private static ModelSpec spec;
    private static final Map<String, int[]> FRAMES = new HashMap<>();

    @BeforeClass
    @SuppressWarnings("unchecked")
    public static void load() throws IOException {
        golden = (Map<String, Object>) Json.parse(read(System.getProperty("edgeage.golden", "src/test/resources/golden.json")));
        spec = ModelSpec.parse(read(System.getProperty("edgeage.manifest", "../app/src/main/assets/manifest.json")));
        for (Object item : (List<Object>) golden.get("faces")) {
            Map<String, Object> face = (Map<String, Object>) item;
            byte[] rgb = Base64.getDecoder().decode((String) face.get("rgb_base64"));
            int[] argb = new int[rgb.length / 3];
            for (int i = 0; i < argb.length; i++) {
                argb[i] = 0xFF000000 | (rgb[3 * i] & 0xFF) << 16 | (rgb[3 * i + 1] & 0xFF) << 8 | (rgb[3 * i + 2] & 0xFF);
            }
            FRAMES.put((String) face.get("image"), argb);
        }
    }

    private static String read(String path) throws IOException {
        Path p = Paths.get(path);
        assertTrue("missing " + p.toAbsolutePath(), Files.isRegularFile(p));
        return new String(Files.readAllBytes(p), StandardCharsets.UTF_8);
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> cases() {
        return (List<Map<String, Object>>) (List<?>) golden.get("cases");
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> face(String image) {
        for (Object item : (List<Object>) golden.get("faces")) {
            Map<String, Object> face = (Map<String, Object>) item;
            if (face.get("image").equals(image)) {
                return face;
            }
        }
        throw new AssertionError("no face " + image);
    }

    private static double coordinate(Map<String, Object> face, String key, int index) {
        return (Double) ((List<?>) face.get(key)).get(index);
    }

    @Test
    public void vectorsCoverEveryModelFile() {
        assertFalse(cases().isEmpty());
        for (ModelSpec.ModelFile file : spec.files) {
            assertTrue("no golden case for " + file.file, cases().stream().anyMatch(c -> c.get("file").equals(file.file)));
        }
    }

    @Test
    public void inputTensorsMatchPython() {
        for (Map<String, Object> c : cases()) {
            Map<String, Object> face = face((String) c.get("image"));
            int width = ((Double) face.get("width")).intValue();
            int height = ((Double) face.get("height")).intValue();
            float[] pixels = FaceCrop.crop(FRAMES.get(face.get("image")), width, height,
                    coordinate(face, "eye_left", 0), coordinate(face, "eye_left", 1),
                    coordinate(face, "eye_right", 0), coordinate(face, "eye_right", 1), spec);
            float[] normalised = InputTensor.normalise(pixels, spec);
            ModelSpec.ModelFile file = spec.file((String) c.get("file"));
            byte[] expected = Base64.getDecoder().decode((String) c.get("input_base64"));
            String what = c.get("file") + " on " + c.get("image");
            assertEquals(what, file.inputDtype, c.get("input_dtype"));
            if (file.isInt8Input()) {
                byte[] actual = InputTensor.quantize(normalised, file.inputScale, file.inputZeroPoint);
                assertArrayEquals(what + ": int8 input", expected, actual);
            } else {
                float[] wanted = new float[normalised.length];
                ByteBuffer.wrap(expected).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(wanted);
                assertArrayEquals(what + ": float input", wanted, normalised, 1e-5f);
            }
            ByteBuffer buffer = InputTensor.allocate(spec, file);
            InputTensor.write(normalised, file, buffer);
            assertEquals(what + ": buffer size", expected.length, buffer.capacity());
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    public void decodedOutputsMatchPython() {
        for (Map<String, Object> c : cases()) {
            List<Map<String, Object>> outputs = (List<Map<String, Object>>) (List<?>) c.get("outputs");
            // Hand the outputs over in reverse, as an interpreter may list them: the decoder must match by name.
            int n = outputs.size();
            String[] names = new String[n];
            float[] stored = new float[n];
            double[] scales = new double[n];
            int[] zeroPoints = new int[n];
            for (int i = 0; i < n; i++) {
                Map<String, Object> output = outputs.get(n - 1 - i);
                names[i] = (String) output.get("name");
                stored[i] = ((Double) ((List<?>) output.get("values")).get(0)).floatValue();
                Map<String, Object> quantization = (Map<String, Object>) output.get("quantization");
                scales[i] = (Double) quantization.get("scale");
                zeroPoints[i] = ((Double) quantization.get("zero_point")).intValue();
            }
            int[] order = OutputDecoder.tensorOrder(names, spec);
            float[] values = new float[n];
            for (int k = 0; k < n; k++) {
                values[k] = OutputDecoder.dequantize(stored[order[k]], scales[order[k]], zeroPoints[order[k]]);
            }
            AgeGender answer = OutputDecoder.decode(values, spec);
            String what = c.get("file") + " on " + c.get("image");
            assertEquals(what + ": age", (Double) c.get("age"), answer.age, 1e-4);
            assertEquals(what + ": P(female)", (Double) c.get("p_female"), answer.pFemale, 1e-4);
        }
    }
}
