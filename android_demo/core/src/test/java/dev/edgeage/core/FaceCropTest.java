package dev.edgeage.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import org.junit.Test;

/** FaceCrop's geometry on frames whose answer is known without any model. */
public class FaceCropTest {
    private static ModelSpec spec(int size) {
        return ModelSpec.parse(ModelSpecTest.manifest(size, "[0.0, 0.0, 0.0]", "[1.0, 1.0, 1.0]", "RGB"));
    }

    private static int[] gradient(int width, int height) {
        int[] argb = new int[width * height];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                argb[y * width + x] = 0xFF000000 | (x % 256) << 16 | (y % 256) << 8 | ((x + y) % 256);
            }
        }
        return argb;
    }

    @Test
    public void eyesOnTheTemplateGiveTheFrameBack() {
        ModelSpec spec = spec(200); // chip size 200: a 200 x 200 frame whose eyes sit on the template is the chip
        int[] frame = gradient(200, 200);
        float[] pixels = FaceCrop.crop(frame, 200, 200, 57.5, 62, 138, 62, spec);
        for (int i = 0; i < 200 * 200; i++) {
            assertEquals((frame[i] >> 16) & 0xFF, pixels[3 * i], 1e-9);
            assertEquals((frame[i] >> 8) & 0xFF, pixels[3 * i + 1], 1e-9);
            assertEquals(frame[i] & 0xFF, pixels[3 * i + 2], 1e-9);
        }
    }

    @Test
    public void aTiltedFaceIsLevelled() {
        ModelSpec spec = spec(200);
        // Eyes turned 90 degrees (the left one above the right one): chip x runs down the frame.
        double[] m = FaceCrop.chipToImage(100, 50, 100, 130.5, spec);
        assertEquals(0, m[0], 1e-12);
        assertEquals(1, m[3], 1e-12);
        // the chip's left eye point maps onto the frame's left eye point
        assertEquals(100, m[0] * 57.5 + m[1] * 62 + m[2], 1e-9);
        assertEquals(50, m[3] * 57.5 + m[4] * 62 + m[5], 1e-9);
    }

    @Test
    public void outsideTheFrameIsBlack() {
        ModelSpec spec = spec(64);
        int[] white = new int[10 * 10];
        java.util.Arrays.fill(white, 0xFFFFFFFF);
        // eyes far outside a 10 x 10 frame: every sample misses it
        float[] pixels = FaceCrop.crop(white, 10, 10, 1000, 1000, 1080, 1000, spec);
        assertArrayEquals(new float[64 * 64 * 3], pixels, 0f);
    }

    @Test(expected = IllegalArgumentException.class)
    public void pixelCountMustMatchTheSize() {
        FaceCrop.crop(new int[5], 10, 10, 1, 1, 5, 1, spec(64));
    }

    @Test
    public void int8QuantisationRoundsHalfToEvenAndClamps() {
        byte[] q = InputTensor.quantize(new float[] {0.5f, 1.5f, 2.5f, -1000f, 1000f}, 1.0, 0);
        assertArrayEquals(new byte[] {0, 2, 2, -128, 127}, q);
    }
}
