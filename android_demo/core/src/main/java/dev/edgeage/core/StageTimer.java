package dev.edgeage.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * Times the stages of each frame the app processes (crop, tensor, inference, decode) and the whole frame, and
 * reports them as one logcat line that {@code edge-age benchmark --device adb --app-stages} reads:
 * {@code EDGE_AGE_BENCH {"model": ..., "frames": N, "stages": {"crop": {"median_ms": ..., ...}, ...}}}.
 * The clock is injectable so the arithmetic is tested on the host with exact times.
 */
public final class StageTimer {
    public static final String LOG_PREFIX = "EDGE_AGE_BENCH ";

    private final LongSupplier nanos;
    private final Map<String, List<Long>> stages = new LinkedHashMap<>();
    private final List<Long> frames = new ArrayList<>();
    private String current;
    private long stageStart;
    private long frameSum;

    public StageTimer() {
        this(System::nanoTime);
    }

    public StageTimer(LongSupplier nanos) {
        this.nanos = nanos;
    }

    /** Ends the running stage (if any) and starts {@code stage}. */
    public void start(String stage) {
        long now = nanos.getAsLong();
        close(now);
        current = stage;
        stageStart = now;
    }

    /** Ends the running stage and the frame: the frame's time is the sum of its stages. */
    public void endFrame() {
        close(nanos.getAsLong());
        frames.add(frameSum);
        frameSum = 0;
    }

    private void close(long now) {
        if (current != null) {
            long spent = now - stageStart;
            stages.computeIfAbsent(current, k -> new ArrayList<>()).add(spent);
            frameSum += spent;
            current = null;
        }
    }

    public int frames() {
        return frames.size();
    }

    /** The q-quantile (0..1) of a stage's times in ms, by the nearest-rank method; "frame" for whole frames. */
    public double quantileMs(String stage, double q) {
        List<Long> times = "frame".equals(stage) ? frames : stages.get(stage);
        if (times == null || times.isEmpty()) {
            throw new IllegalArgumentException("no times recorded for stage " + stage);
        }
        long[] sorted = times.stream().mapToLong(Long::longValue).toArray();
        Arrays.sort(sorted);
        int rank = (int) Math.ceil(q * sorted.length);
        return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))] / 1e6;
    }

    public double meanMs(String stage) {
        List<Long> times = "frame".equals(stage) ? frames : stages.get(stage);
        return times.stream().mapToLong(Long::longValue).average().orElse(Double.NaN) / 1e6;
    }

    /** The logcat line: model, accelerator, threads, frame count, and per stage (and frame) median/mean/p90. */
    public String report(String model, String accelerator, int threads) {
        StringBuilder json = new StringBuilder();
        json.append(String.format(Locale.ROOT, "{\"model\": \"%s\", \"accelerator\": \"%s\", \"threads\": %d, "
                + "\"frames\": %d, \"stages\": {", model, accelerator, threads, frames.size()));
        List<String> names = new ArrayList<>(stages.keySet());
        names.add("frame");
        for (int i = 0; i < names.size(); i++) {
            String name = names.get(i);
            json.append(String.format(Locale.ROOT, "%s\"%s\": {\"median_ms\": %.4f, \"mean_ms\": %.4f, \"p90_ms\": %.4f}",
                    i == 0 ? "" : ", ", name, quantileMs(name, 0.5), meanMs(name), quantileMs(name, 0.9)));
        }
        return LOG_PREFIX + json.append("}}");
    }
}
