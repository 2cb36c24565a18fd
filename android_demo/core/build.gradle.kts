// Plain Java, no Android imports: the app depends on it, and CI compiles and tests it on the host JVM
// without Gradle (core/host-test.sh). `gradle :core:test` runs the same JUnit tests.
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    workingDir = projectDir // the tests find src/test/resources/golden.json and ../app/src/main/assets from here
}
