package dev.edgeage.core;

/** One face's answer: age in years and the probability that the face is female. */
public final class AgeGender {
    public final float age;
    public final float pFemale;

    public AgeGender(float age, float pFemale) {
        this.age = age;
        this.pFemale = pFemale;
    }

    public boolean isFemale() {
        return pFemale > 0.5f;
    }

    /** The probability of the gender shown: max(p, 1 - p). */
    public float confidence() {
        return Math.max(pFemale, 1f - pFemale);
    }

    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT, "%.1f y, %s %.0f%%", age, isFemale() ? "female" : "male",
                100f * confidence());
    }
}
