package dev.edgeage.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.Map;
import org.junit.Test;

/** The stage arithmetic on a clock whose ticks are known exactly. */
public class StageTimerTest {
    /** A clock that advances by the given nanoseconds at each reading. */
    private static java.util.function.LongSupplier steps(long... increments) {
        long[] state = {0, 0};
        return () -> {
            long now = state[0];
            state[0] += increments[(int) (state[1]++ % increments.length)];
            return now;
        };
    }

    @Test
    public void stagesAndFramesAreTimedFromTheClock() {
        // per frame, readings at: crop start, tensor start, inference start, decode start, frame end
        StageTimer timer = new StageTimer(steps(1_000_000, 2_000_000, 5_000_000, 500_000, 0));
        for (int frame = 0; frame < 3; frame++) {
            timer.start("crop");
            timer.start("tensor");
            timer.start("inference");
            timer.start("decode");
            timer.endFrame();
        }
        assertEquals(3, timer.frames());
        assertEquals(1.0, timer.quantileMs("crop", 0.5), 1e-9);
        assertEquals(2.0, timer.quantileMs("tensor", 0.5), 1e-9);
        assertEquals(5.0, timer.quantileMs("inference", 0.9), 1e-9);
        assertEquals(0.5, timer.meanMs("decode"), 1e-9);
        assertEquals(8.5, timer.quantileMs("frame", 0.5), 1e-9);
    }

    @Test
    public void theReportIsOneParsableLine() {
        StageTimer timer = new StageTimer(steps(3_000_000, 1_000_000, 0));
        timer.start("inference");
        timer.start("decode");
        timer.endFrame();
        String line = timer.report("m_int8.tflite", "CPU, XNNPACK", 4);
        assertTrue(line.startsWith(StageTimer.LOG_PREFIX));
        @SuppressWarnings("unchecked")
        Map<String, Object> parsed = (Map<String, Object>) Json.parse(line.substring(StageTimer.LOG_PREFIX.length()));
        assertEquals("m_int8.tflite", parsed.get("model"));
        @SuppressWarnings("unchecked")
        Map<String, Map<String, Object>> stages = (Map<String, Map<String, Object>>) parsed.get("stages");
        assertEquals(3.0, ((Number) stages.get("inference").get("median_ms")).doubleValue(), 1e-9);
        assertEquals(4.0, ((Number) stages.get("frame").get("p90_ms")).doubleValue(), 1e-9);
    }

    @Test(expected = IllegalArgumentException.class)
    public void aStageNeverTimedIsAnError() {
        new StageTimer().quantileMs("crop", 0.5);
    }
}
