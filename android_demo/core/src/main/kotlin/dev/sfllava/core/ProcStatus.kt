package dev.sfllava.core

import java.io.File

/** This process's peak resident memory from /proc/self/status (Linux and Android), as the host bench reports it. */
object ProcStatus {
    fun peakRssMb(status: File = File("/proc/self/status")): Double? = try {
        status.readLines().firstOrNull { it.startsWith("VmHWM:") }
            ?.split(Regex("\\s+"))?.getOrNull(1)?.toDoubleOrNull()?.div(1024.0)
    } catch (e: java.io.IOException) {
        null
    }
}
