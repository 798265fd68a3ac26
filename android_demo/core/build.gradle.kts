// Plain Kotlin/JVM: no android.* here, so the same code is compiled and tested on any JVM
// (make test does it with kotlinc; `./gradlew :core:test -PsfllavaBundles=DIR` does it here).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(libs.gson)
    testImplementation(libs.junit)
    testImplementation(libs.kotlin.test.junit)
}

tasks.test {
    systemProperty("sfllava.bundles", providers.gradleProperty("sfllavaBundles").getOrElse(""))
}
