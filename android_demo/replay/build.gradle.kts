// `./gradlew :replay:run --args="BUNDLE OUT"`: the LlmModule calls core builds for the golden clip.
plugins {
    alias(libs.plugins.kotlin.jvm)
    application
}

kotlin {
    jvmToolchain(17)
}

application {
    mainClass.set("dev.sfllava.replay.ReplayKt")
}

dependencies {
    implementation(project(":core"))
    implementation(libs.gson)
}
