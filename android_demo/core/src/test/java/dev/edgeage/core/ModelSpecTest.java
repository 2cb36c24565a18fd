package dev.edgeage.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/** The manifest as the app reads it: the shipped one, and broken ones that must fail with a clear message. */
public class ModelSpecTest {
    static String manifest(int size, String mean, String std, String order) {
        return "{\"model\": {\"name\": \"m\"}, \"input\": {\"size\": " + size + ", \"mean\": " + mean + ", \"std\": " + std
                + ", \"channel_order\": \"" + order + "\"}, \"outputs\": [{\"name\": \"age\"}, {\"name\": \"gender\"}],"
                + " \"alignment\": {\"chip_size\": 200, \"eye_template\": [[57.5, 62.0], [138.0, 62.0]]},"
                + " \"files\": [{\"file\": \"m.tflite\", \"precision\": \"int8\","
                + " \"input_tensor\": {\"dtype\": \"int8\", \"scale\": 0.5, \"zero_point\": -3}}]}";
    }

    @Test
    public void readsTheShippedManifest() throws IOException {
        String text = new String(Files.readAllBytes(Paths.get(
                System.getProperty("edgeage.manifest", "../app/src/main/assets/manifest.json"))), StandardCharsets.UTF_8);
        ModelSpec spec = ModelSpec.parse(text);
        assertTrue(spec.inputSize > 0);
        assertEquals(Arrays.asList("age", "gender"), spec.outputNames);
        assertTrue(spec.files.size() >= 1);
        assertEquals(200, spec.chipSize);
    }

    @Test
    public void readsEveryField() {
        ModelSpec spec = ModelSpec.parse(manifest(96, "[0.5, 0.25, 0.125]", "[2, 4, 8]", "BGR"));
        assertEquals(96, spec.inputSize);
        assertEquals(0.25f, spec.mean[1], 0f);
        assertEquals(8f, spec.std[2], 0f);
        assertEquals("BGR", spec.channelOrder);
        ModelSpec.ModelFile file = spec.file("m.tflite");
        assertTrue(file.isInt8Input());
        assertEquals(0.5, file.inputScale, 0);
        assertEquals(-3, file.inputZeroPoint);
        assertEquals(138.0, spec.eyeTemplate[2], 0);
    }

    @Test
    public void bgrSwapsChannelsBeforeNormalising() {
        ModelSpec spec = ModelSpec.parse(manifest(8, "[0.0, 0.0, 0.0]", "[1.0, 1.0, 1.0]", "BGR"));
        float[] rgb = new float[8 * 8 * 3];
        rgb[0] = 255f; // red
        float[] tensor = InputTensor.normalise(rgb, spec);
        assertEquals(0f, tensor[0], 0f);
        assertEquals(1f, tensor[2], 0f);
    }

    private static void expectError(String json, String fragment) {
        try {
            ModelSpec.parse(json);
            fail("accepted a bad manifest: " + fragment);
        } catch (IllegalArgumentException e) {
            assertTrue("message '" + e.getMessage() + "' should mention " + fragment, e.getMessage().contains(fragment));
        }
    }

    @Test
    public void badManifestsSayWhatIsWrong() {
        expectError(manifest(96, "[0.5, 0.25]", "[1, 1, 1]", "RGB"), "mean must hold 3 values");
        expectError(manifest(96, "[0, 0, 0]", "[1, 0, 1]", "RGB"), "std must be positive");
        expectError(manifest(96, "[0, 0, 0]", "[1, 1, 1]", "YUV"), "channel_order");
        expectError(manifest(96, "[0, 0, 0]", "[1, 1, 1]", "RGB").replace("\"size\": 96, ", ""), "missing \"size\"");
        expectError(manifest(96, "[0, 0, 0]", "[1, 1, 1]", "RGB").replace("\"age\"", "\"years\""), "\"age\"");
        expectError(manifest(96, "[0, 0, 0]", "[1, 1, 1]", "RGB").replace("\"int8\", \"scale\"", "\"uint8\", \"scale\""),
                "dtype uint8 is neither float32 nor int8");
        expectError(manifest(96, "[0, 0, 0]", "[1, 1, 1]", "RGB").replace("input_tensor", "input_quantization"),
                "missing \"input_tensor\"");  // a manifest written before edge-age-android/2: reinstall
        expectError("{\"model\": ", "malformed JSON");
        expectError("[1, 2]", "must be an object");
    }

    @Test
    @SuppressWarnings("unchecked")
    public void jsonReaderHandlesEscapesNumbersAndNesting() {
        Map<String, Object> parsed = (Map<String, Object>) Json.parse(
                "{\"a\\n\\u00e9\": [1, -2.5e3, true, false, null, {\"b\": \"\\\"q\\\"\"}], \"c\": {}}");
        List<Object> list = (List<Object>) parsed.get("a\n\u00e9");
        assertEquals(-2500.0, (Double) list.get(1), 0);
        assertEquals(null, list.get(4));
        assertEquals("\"q\"", ((Map<String, Object>) list.get(5)).get("b"));
        try {
            Json.parse("{\"a\": 1} x");
            fail("trailing text accepted");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("after the JSON value"));
        }
    }
}
