package dev.edgeage.core;

/**
 * Cuts a face out of a camera frame the way the Python pipeline frames its training chips: the similarity
 * that puts the two eye centres on the manifest's eye template (a UTKFace-style chip of chipSize pixels),
 * sampled straight at the model's input size with bilinear interpolation; outside the frame is black.
 * Same arithmetic, in the same order, as {@code edge_age.android.phone_pixels} (checked by the golden vectors).
 */
public final class FaceCrop {
    private FaceCrop() {
    }

    /**
     * The 2 x 3 affine {a, b, c, d, e, f} taking chip pixels (x, y) to frame pixels (a x + b y + c, d x + e y + f).
     * Eyes as seen in the frame: the one on the frame's left first (the person's right eye when the frame
     * is upright and not mirrored). Coordinates are continuous: pixel k covers [k, k + 1).
     */
    public static double[] chipToImage(double leftX, double leftY, double rightX, double rightY, ModelSpec spec) {
        double templateLeftX = spec.eyeTemplate[0];
        double templateLeftY = spec.eyeTemplate[1];
        double templateRightX = spec.eyeTemplate[2];
        double cosScale = (rightX - leftX) / (templateRightX - templateLeftX); // the template's eye line is level
        double sinScale = (rightY - leftY) / (templateRightX - templateLeftX);
        double shiftX = leftX - (cosScale * templateLeftX - sinScale * templateLeftY);
        double shiftY = leftY - (sinScale * templateLeftX + cosScale * templateLeftY);
        return new double[] {cosScale, -sinScale, shiftX, sinScale, cosScale, shiftY};
    }

    /**
     * Sample the face: ARGB pixels (as {@code Bitmap.getPixels} gives them, row by row) ->
     * inputSize x inputSize x 3 floats in 0..255, R, G, B per pixel.
     */
    public static float[] warp(int[] argb, int width, int height, double[] chipToImage, ModelSpec spec) {
        if (argb.length != width * height) {
            throw new IllegalArgumentException("pixels: " + argb.length + " values for a " + width + " x " + height + " image");
        }
        int size = spec.inputSize;
        double step = (double) spec.chipSize / size;
        double a = chipToImage[0], b = chipToImage[1], c = chipToImage[2];
        double d = chipToImage[3], e = chipToImage[4], f = chipToImage[5];
        float[] out = new float[size * size * 3];
        for (int row = 0; row < size; row++) {
            double chipY = (row + 0.5) * step;
            for (int col = 0; col < size; col++) {
                double chipX = (col + 0.5) * step;
                double x = a * chipX + b * chipY + c - 0.5; // to pixel-index coordinates (pixel k's centre is k)
                double y = d * chipX + e * chipY + f - 0.5;
                double x0 = Math.floor(x);
                double y0 = Math.floor(y);
                double fx = x - x0;
                double fy = y - y0;
                int ix = (int) x0;
                int iy = (int) y0;
                int topLeft = pixel(argb, width, height, iy, ix);
                int topRight = pixel(argb, width, height, iy, ix + 1);
                int bottomLeft = pixel(argb, width, height, iy + 1, ix);
                int bottomRight = pixel(argb, width, height, iy + 1, ix + 1);
                int at = (row * size + col) * 3;
                for (int ch = 0; ch < 3; ch++) {
                    int shift = 16 - 8 * ch; // channel 0 = R, 1 = G, 2 = B
                    double top = ((topLeft >> shift) & 0xFF) * (1 - fx) + ((topRight >> shift) & 0xFF) * fx;
                    double bottom = ((bottomLeft >> shift) & 0xFF) * (1 - fx) + ((bottomRight >> shift) & 0xFF) * fx;
                    out[at + ch] = (float) (top * (1 - fy) + bottom * fy);
                }
            }
        }
        return out;
    }

    /** Eye points -> the face's pixels at the model's input size (chipToImage then warp). */
    public static float[] crop(int[] argb, int width, int height, double leftX, double leftY, double rightX,
                               double rightY, ModelSpec spec) {
        return warp(argb, width, height, chipToImage(leftX, leftY, rightX, rightY, spec), spec);
    }

    /** The ARGB pixel at (row, col), or black outside the frame. */
    private static int pixel(int[] argb, int width, int height, int row, int col) {
        return col < 0 || col >= width || row < 0 || row >= height ? 0 : argb[row * width + col];
    }
}
